// The Verilator engine of Apprentice's compiled simulator (sim/compiled).
//
// This file is the engine's adapter and includes harness_abi.h, the C ABI both engines share (its
// conventions are written there), so sim/compiled/sim.py drives either model unchanged. What
// differs from the CXXRTL engine (harness.cc) is underneath:
// - The model is Verilator's C++ of the design's Verilog (Yosys `write_verilog` of the RTLIL).
// - The items are the members of Verilator's root class that sim/compiled/verilator.py found in its
//   header: top-level ports, state Verilator kept (registers, memories) and the signals the
//   caller asked to expose (made `public_flat_rw`). Combinational signals Verilator optimised
//   away are not items at all (CXXRTL computes them on demand; Verilator cannot).
// - Verilator settles combinational logic inside eval() when an input or the clock changes; a
//   write to internal state (a register, a memory row, a restored snapshot) is followed by
//   Verilator's settle pass (every combinational process once), so reads and the next clock edge
//   see logic consistent with the new state, as with CXXRTL.
// - Snapshots copy the model's whole root object (plain data: every signal, memory and trigger).
// - VCD windows are written here from the items (no Verilator tracing compiled in).
//
// Compiled with -DVL_ITEMS="items.inc" (the generated item table) against the verilated model.

#include "Vtop.h"
#include "Vtop___024root.h"
#include "verilated.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

// Verilator's settle pass (external linkage in the generated model; not in its headers).
void Vtop___024root___eval_settle(Vtop___024root *vlSelf);

namespace {

struct Item {
	const char *name;
	unsigned char *base;   // the signal, or row 0 of a memory
	uint32_t width;
	uint32_t depth;        // 1 for signals
	uint32_t stride;       // bytes per value (sizeof the C++ type: 1, 2, 4, 8 or 4·words)
	uint32_t words;        // 32-bit words per value
	bool memory;
	bool is_input;
	bool fast;             // a signal of at most 64 bits
	// Every item is writable (a write to a combinational signal is overwritten by the next
	// evaluation, as in CXXRTL); none is computed on demand.
	static constexpr bool writable = true;
	static constexpr bool has_outline = false;
};

// One value (`stride` bytes of Verilator storage) → `words` little-endian 32-bit words.
inline void load(uint32_t *dst, const unsigned char *src, const Item &item) {
	uint32_t bytes = item.words * 4;
	if (item.stride >= bytes) {
		memcpy(dst, src, bytes);
	} else {
		for (uint32_t i = 0; i < item.words; i++)
			dst[i] = 0;
		memcpy(dst, src, item.stride);
	}
}

// `words` 32-bit words → one value; bits above the width are cleared (Verilator relies on it).
inline void store(unsigned char *dst, const uint32_t *src, const Item &item) {
	uint32_t tmp[2];
	const uint32_t *from = src;
	if (item.width % 32) {
		// mask the top word into a copy (wide values: only the last word needs it)
		if (item.words <= 2) {
			tmp[0] = src[0];
			tmp[1] = item.words > 1 ? src[1] : 0;
			tmp[item.words - 1] &= (1u << (item.width % 32)) - 1;
			from = tmp;
		}
	}
	uint32_t bytes = item.words * 4;
	if (item.stride >= bytes) {
		memcpy(dst, from, bytes);
		if (item.words > 2 && item.width % 32) {
			uint32_t top;
			memcpy(&top, dst + 4 * (item.words - 1), 4);
			top &= (1u << (item.width % 32)) - 1;
			memcpy(dst + 4 * (item.words - 1), &top, 4);
		}
	} else {
		memcpy(dst, from, item.stride);
	}
}

// A VCD writer over the items (signals only; memories are left out, as harness.cc does):
// values are compared with the last sample and only changes are written.
struct Vcd {
	FILE *file = nullptr;
	std::vector<const Item *> items;
	std::vector<std::string> codes;
	std::vector<std::vector<uint32_t>> last;
	std::vector<uint32_t> now;
	bool first = true;

	static std::string code(size_t i) {
		std::string c;
		do {
			c += char('!' + i % 94);
			i /= 94;
		} while (i);
		return c;
	}

	static std::vector<std::string> split(const char *name) {
		std::vector<std::string> parts;
		std::string cur;
		for (const char *p = name; *p; p++) {
			if (*p == ' ') {
				parts.push_back(cur);
				cur.clear();
			} else {
				cur += *p;
			}
		}
		parts.push_back(cur);
		return parts;
	}

	void header(const std::vector<Item> &table) {
		std::vector<const Item *> sorted;
		for (auto &item : table)
			if (!item.memory)
				sorted.push_back(&item);
		std::sort(sorted.begin(), sorted.end(), [](const Item *a, const Item *b) {
			return split(a->name) < split(b->name);
		});
		fprintf(file, "$timescale 1ns $end\n$scope module top $end\n");
		std::vector<std::string> scope;
		for (const Item *item : sorted) {
			std::vector<std::string> parts = split(item->name);
			std::string leaf = parts.back();
			parts.pop_back();
			size_t common = 0;
			while (common < scope.size() && common < parts.size() && scope[common] == parts[common])
				common++;
			for (size_t i = scope.size(); i > common; i--)
				fprintf(file, "$upscope $end\n");
			for (size_t i = common; i < parts.size(); i++)
				fprintf(file, "$scope module %s $end\n", parts[i].c_str());
			scope = parts;
			codes.push_back(code(items.size()));
			items.push_back(item);
			fprintf(file, "$var wire %u %s %s $end\n", item->width, codes.back().c_str(),
			        leaf.c_str());
		}
		for (size_t i = scope.size(); i > 0; i--)
			fprintf(file, "$upscope $end\n");
		fprintf(file, "$upscope $end\n$enddefinitions $end\n");
		last.resize(items.size());
	}

	void sample(uint64_t time) {
		bool stamped = false;
		for (size_t i = 0; i < items.size(); i++) {
			const Item &item = *items[i];
			now.assign(item.words, 0);
			load(now.data(), item.base, item);
			if (!first && now == last[i])
				continue;
			if (!stamped) {
				fprintf(file, "#%llu\n", (unsigned long long)time);
				stamped = true;
			}
			if (item.width == 1) {
				fprintf(file, "%c%s\n", (now[0] & 1) ? '1' : '0', codes[i].c_str());
			} else {
				std::string bits(item.width, '0');
				for (uint32_t b = 0; b < item.width; b++)
					if ((now[b / 32] >> (b % 32)) & 1)
						bits[item.width - 1 - b] = '1';
				fprintf(file, "b%s %s\n", bits.c_str(), codes[i].c_str());
			}
			last[i] = now;
		}
		first = false;
	}
};

} // namespace

struct cs_sim {
	VerilatedContext *context;
	Vtop *top;
	Vtop___024root *root;
	std::vector<Item> table;
	unsigned char *clk = nullptr;
	unsigned char *clk_prev = nullptr;   // Verilator's previous clock value (edge detection)
	std::vector<std::pair<std::string, unsigned char *>> prevs;
	int rst = -1;
	uint64_t cycle = 0;
	bool inputs_dirty = true;      // an input changed: eval() settles what depends on it
	bool state_dirty = true;       // internal state changed: run the settle pass first
	std::string error;
	using Snapshot = std::vector<unsigned char>;
	std::vector<Snapshot> snapshots;
	Vcd *vcd = nullptr;

	cs_sim() {
		context = new VerilatedContext;
		top = new Vtop{context, "top"};
		root = top->rootp;
		Vtop___024root *R = root;
#define SIG(n, m, w, in) table.push_back(Item{n, (unsigned char *)&R->m, w, 1, \
	uint32_t(sizeof(R->m)), (w + 31) / 32, false, in, w <= 64});
#define MEM(n, m, w, d) table.push_back(Item{n, (unsigned char *)&R->m[0], w, d, \
	uint32_t(sizeof(R->m[0])), (w + 31) / 32, true, false, false});
#define PREV(n, m) prevs.emplace_back(n, (unsigned char *)&R->m);
#include VL_ITEMS
#undef SIG
#undef MEM
#undef PREV
		top->eval();                // initial blocks and the first settle
		inputs_dirty = state_dirty = false;
	}

	~cs_sim() {
		close_vcd();
		top->final();
		delete top;
		delete context;
	}

	inline void settle() {
		if (state_dirty) {
			Vtop___024root___eval_settle(root);
			state_dirty = false;
			inputs_dirty = true;
		}
		if (inputs_dirty) {
			top->eval();
			inputs_dirty = false;
		}
	}

	void close_vcd() {
		if (vcd) {
			fclose(vcd->file);
			delete vcd;
			vcd = nullptr;
		}
	}

	// One clock cycle (see the conventions in harness_abi.h, and its VCD times). Changed inputs
	// are settled by the rising edge's eval() itself (Verilator evaluates input-driven logic
	// before the clocked processes).
	inline void tick() {
		if (state_dirty)
			settle();
		*clk = 1;
		top->eval();
		if (vcd)
			vcd->sample(cycle * 10 + 5);
		*clk = 0;
		if (clk_prev) {
			// The design has only rising-edge processes and nothing reads the clock's level:
			// a falling edge changes nothing but Verilator's memory of the clock, so set that
			// instead of evaluating the whole input-driven logic once more.
			*clk_prev = 0;
		} else {
			top->eval();
		}
		inputs_dirty = false;
		cycle++;
		if (vcd)
			vcd->sample(cycle * 10);
	}

	inline uint64_t read64(const Item &item) {
		const unsigned char *p = item.base;
		switch (item.stride) {
		case 1: return *p;
		case 2: { uint16_t v; memcpy(&v, p, 2); return v; }
		case 4: { uint32_t v; memcpy(&v, p, 4); return v; }
		default: { uint64_t v; memcpy(&v, p, 8); return v; }   // QData, or VlWide<2>
		}
	}

	inline void write64(const Item &item, uint64_t value) {
		unsigned char *p = item.base;
		switch (item.stride) {
		case 1: *p = uint8_t(value); break;
		case 2: { uint16_t v = uint16_t(value); memcpy(p, &v, 2); break; }
		case 4: { uint32_t v = uint32_t(value); memcpy(p, &v, 4); break; }
		default: memcpy(p, &value, 8); break;
		}
	}

	// An input is settled by the next eval(); internal state by the settle pass first.
	inline void touched(const Item &item) {
		if (item.is_input)
			inputs_dirty = true;
		else
			state_dirty = true;
	}

	void read_words(const Item &item, uint32_t *words) {
		load(words, item.base, item);
	}

	void write_words(const Item &item, const uint32_t *words) {
		store(item.base, words, item);
	}

	void mem_read(const Item &item, uint64_t start, uint64_t count, uint32_t *words) {
		const unsigned char *row = item.base + start * item.stride;
		if (item.stride == item.words * 4) {
			memcpy(words, row, count * item.stride);
			return;
		}
		for (uint64_t r = 0; r < count; r++)
			load(words + r * item.words, row + r * item.stride, item);
	}

	void mem_write(const Item &item, uint64_t start, uint64_t count, const uint32_t *words) {
		unsigned char *row = item.base + start * item.stride;
		for (uint64_t r = 0; r < count; r++)
			store(row + r * item.stride, words + r * item.words, item);
	}

	inline const unsigned char *flag(const Item &item) {
		return item.base;
	}

	void set_clock(const Item &item) {
		clk = item.base;
		clk_prev = nullptr;
		for (auto &prev : prevs)
			if (prev.first == item.name)
				clk_prev = prev.second;
	}

	void begin_run_io() {
		settle();
	}

	// The whole root object is plain data (signals, memories, trigger state; two pointers that
	// stay the same for this model), so a snapshot is a copy of its bytes.
	Snapshot save_state() {
		const unsigned char *p = reinterpret_cast<const unsigned char *>(root);
		return Snapshot(p, p + sizeof(Vtop___024root));
	}

	void restore_state(const Snapshot &snapshot) {
		memcpy(reinterpret_cast<unsigned char *>(root), snapshot.data(), sizeof(Vtop___024root));
		inputs_dirty = state_dirty = false;   // saved settled
	}

	void open_vcd(FILE *file) {
		vcd = new Vcd;
		vcd->file = file;
		vcd->header(table);
		vcd->sample(cycle * 10);
	}
};

#include "harness_abi.h"
