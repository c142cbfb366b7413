// The C harness of Apprentice's compiled simulator, Verilator flavour (sim/compiled).
//
// The same C ABI as harness.cc (the CXXRTL flavour), so sim/compiled/sim.py drives either model
// unchanged; see the conventions there. What differs is underneath:
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

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

// Verilator's settle pass (external linkage in the generated model; not in its headers).
void Vtop___024root___eval_settle(Vtop___024root *vlSelf);

#define CS_ABI_VERSION 2

enum {
	CS_OK          =  0,
	CS_E_ID        = -1,
	CS_E_READONLY  = -2,
	CS_E_KIND      = -3,
	CS_E_WIDTH     = -4,
	CS_E_RANGE     = -5,
	CS_E_IO        = -6,
	CS_E_STATE     = -7,
};

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
};

inline uint64_t mask64(uint32_t width) {
	return width >= 64 ? ~uint64_t(0) : ((uint64_t(1) << width) - 1);
}

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
	value &= mask64(item.width);
	unsigned char *p = item.base;
	switch (item.stride) {
	case 1: *p = uint8_t(value); break;
	case 2: { uint16_t v = uint16_t(value); memcpy(p, &v, 2); break; }
	case 4: { uint32_t v = uint32_t(value); memcpy(p, &v, 4); break; }
	default: memcpy(p, &value, 8); break;
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
	std::vector<std::vector<unsigned char>> snapshots;
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

	// One clock cycle. VCD time: 10 units per cycle, the state after `c` cycles at 10·c, the
	// rising edge of cycle `c` at 10·c + 5. Changed inputs are settled by the rising edge's
	// eval() itself (Verilator evaluates input-driven logic before the clocked processes).
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
};

extern "C" {

int cs_abi_version() {
	return CS_ABI_VERSION;
}

cs_sim *cs_create() {
	return new cs_sim;
}

void cs_destroy(cs_sim *s) {
	delete s;
}

const char *cs_error(cs_sim *s) {
	return s->error.c_str();
}

int cs_item_count(cs_sim *s) {
	return int(s->table.size());
}

const char *cs_item_name(cs_sim *s, int id) {
	if (id < 0 || size_t(id) >= s->table.size())
		return nullptr;
	return s->table[id].name;
}

// Flags as harness.cc: bit 0 memory, bit 1 writable, bit 2 top-level input, bit 3 computed on
// demand (never here), bit 4 fast path. Every item is writable: a write to a combinational
// signal is overwritten by the next evaluation, as in CXXRTL.
int cs_item_info(cs_sim *s, int id, uint32_t *width, uint32_t *depth, uint32_t *flags) {
	if (id < 0 || size_t(id) >= s->table.size())
		return CS_E_ID;
	const Item &item = s->table[id];
	*width = item.width;
	*depth = item.depth;
	*flags = (item.memory ? 1 : 0) | 2 | (item.is_input ? 4 : 0) | (item.fast ? 16 : 0);
	return CS_OK;
}

int cs_set_clock(cs_sim *s, int clk_id, int rst_id) {
	if (clk_id < 0 || size_t(clk_id) >= s->table.size() ||
	    (rst_id >= 0 && size_t(rst_id) >= s->table.size()))
		return CS_E_ID;
	const Item &clk = s->table[clk_id];
	if (clk.memory || clk.width != 1 || !clk.is_input) {
		s->error = "the clock must be a 1-bit top-level input";
		return CS_E_KIND;
	}
	if (rst_id >= 0) {
		const Item &rst = s->table[rst_id];
		if (rst.memory || rst.width != 1 || !rst.is_input) {
			s->error = "the reset must be a 1-bit top-level input";
			return CS_E_KIND;
		}
	}
	s->clk = clk.base;
	s->clk_prev = nullptr;
	for (auto &prev : s->prevs)
		if (prev.first == clk.name)
			s->clk_prev = prev.second;
	s->rst = rst_id;
	return CS_OK;
}

uint64_t cs_cycle(cs_sim *s) {
	return s->cycle;
}

static int check_signal(cs_sim *s, int id) {
	if (id < 0 || size_t(id) >= s->table.size())
		return CS_E_ID;
	if (s->table[id].memory)
		return CS_E_KIND;
	return CS_OK;
}

static void mark(cs_sim *s, const Item &item) {
	if (item.is_input)
		s->inputs_dirty = true;
	else
		s->state_dirty = true;
}

int cs_get64(cs_sim *s, int id, uint64_t *value) {
	int rc = check_signal(s, id);
	if (rc < 0)
		return rc;
	const Item &item = s->table[id];
	if (item.width > 64)
		return CS_E_WIDTH;
	s->settle();
	*value = read64(item);
	return CS_OK;
}

int cs_set64(cs_sim *s, int id, uint64_t value) {
	int rc = check_signal(s, id);
	if (rc < 0)
		return rc;
	const Item &item = s->table[id];
	if (item.width > 64)
		return CS_E_WIDTH;
	write64(item, value);
	mark(s, item);
	return CS_OK;
}

int cs_get_words(cs_sim *s, int id, uint32_t *words) {
	int rc = check_signal(s, id);
	if (rc < 0)
		return rc;
	const Item &item = s->table[id];
	s->settle();
	load(words, item.base, item);
	return CS_OK;
}

int cs_set_words(cs_sim *s, int id, const uint32_t *words) {
	int rc = check_signal(s, id);
	if (rc < 0)
		return rc;
	const Item &item = s->table[id];
	store(item.base, words, item);
	mark(s, item);
	return CS_OK;
}

static int check_memory(cs_sim *s, int id, uint64_t start, uint64_t count) {
	if (id < 0 || size_t(id) >= s->table.size())
		return CS_E_ID;
	const Item &item = s->table[id];
	if (!item.memory)
		return CS_E_KIND;
	if (start > item.depth || count > item.depth - start)
		return CS_E_RANGE;
	return CS_OK;
}

int cs_mem_read(cs_sim *s, int id, uint64_t start, uint64_t count, uint32_t *words) {
	int rc = check_memory(s, id, start, count);
	if (rc < 0)
		return rc;
	const Item &item = s->table[id];
	const unsigned char *row = item.base + start * item.stride;
	if (item.stride == item.words * 4) {
		memcpy(words, row, count * item.stride);
		return CS_OK;
	}
	for (uint64_t r = 0; r < count; r++)
		load(words + r * item.words, row + r * item.stride, item);
	return CS_OK;
}

int cs_mem_write(cs_sim *s, int id, uint64_t start, uint64_t count, const uint32_t *words) {
	int rc = check_memory(s, id, start, count);
	if (rc < 0)
		return rc;
	const Item &item = s->table[id];
	unsigned char *row = item.base + start * item.stride;
	for (uint64_t r = 0; r < count; r++)
		store(row + r * item.stride, words + r * item.words, item);
	s->state_dirty = true;
	return CS_OK;
}

int cs_step(cs_sim *s, uint64_t n) {
	if (!s->clk)
		return CS_E_STATE;
	for (uint64_t i = 0; i < n; i++)
		s->tick();
	return CS_OK;
}

int cs_reset(cs_sim *s, uint64_t n) {
	if (!s->clk || s->rst < 0)
		return CS_E_STATE;
	const Item &rst = s->table[s->rst];
	write64(rst, 1);
	s->inputs_dirty = true;
	for (uint64_t i = 0; i < n; i++)
		s->tick();
	write64(rst, 0);
	s->inputs_dirty = true;
	s->settle();
	return CS_OK;
}

int64_t cs_run_until(cs_sim *s, int id, uint64_t max_cycles) {
	int rc = check_signal(s, id);
	if (rc < 0)
		return rc;
	if (!s->clk)
		return CS_E_STATE;
	const Item &item = s->table[id];
	if (item.width != 1)
		return CS_E_WIDTH;
	s->settle();
	uint64_t n = 0;
	const unsigned char *flag = item.base;
	while (n < max_cycles && !(*flag & 1)) {
		s->tick();
		n++;
	}
	return int64_t(n);
}

int cs_run_io(cs_sim *s, uint64_t n, int n_in, const int *in_ids, const uint64_t *in_values,
              int n_out, const int *out_ids, uint64_t *out_values) {
	if (!s->clk)
		return CS_E_STATE;
	std::vector<const Item *> ins, outs;
	for (int j = 0; j < n_in; j++) {
		int rc = check_signal(s, in_ids[j]);
		if (rc < 0)
			return rc;
		const Item &item = s->table[in_ids[j]];
		if (!item.is_input)
			return CS_E_READONLY;
		if (item.width > 64)
			return CS_E_WIDTH;
		ins.push_back(&item);
	}
	for (int k = 0; k < n_out; k++) {
		int rc = check_signal(s, out_ids[k]);
		if (rc < 0)
			return rc;
		const Item &item = s->table[out_ids[k]];
		if (item.width > 64)
			return CS_E_WIDTH;
		outs.push_back(&item);
	}
	s->settle();
	for (uint64_t i = 0; i < n; i++) {
		for (int j = 0; j < n_in; j++)
			write64(*ins[j], in_values[i * n_in + j]);
		s->tick();
		for (int k = 0; k < n_out; k++)
			out_values[i * n_out + k] = read64(*outs[k]);
	}
	return CS_OK;
}

// The whole root object is plain data (signals, memories, trigger state; two pointers that stay
// the same for this model), so a snapshot is a copy of its bytes.
int cs_snapshot(cs_sim *s) {
	s->settle();
	const unsigned char *p = reinterpret_cast<const unsigned char *>(s->root);
	s->snapshots.emplace_back(p, p + sizeof(Vtop___024root));
	return int(s->snapshots.size() - 1);
}

int cs_restore(cs_sim *s, int id) {
	if (id < 0 || size_t(id) >= s->snapshots.size() || s->snapshots[id].empty())
		return CS_E_ID;
	memcpy(reinterpret_cast<unsigned char *>(s->root), s->snapshots[id].data(),
	       sizeof(Vtop___024root));
	s->inputs_dirty = s->state_dirty = false;   // saved settled
	return CS_OK;
}

int cs_snapshot_free(cs_sim *s, int id) {
	if (id < 0 || size_t(id) >= s->snapshots.size())
		return CS_E_ID;
	std::vector<unsigned char>().swap(s->snapshots[id]);
	return CS_OK;
}

int cs_vcd_open(cs_sim *s, const char *path) {
	if (s->vcd) {
		s->error = "a VCD window is already open";
		return CS_E_STATE;
	}
	FILE *f = fopen(path, "wb");
	if (!f) {
		s->error = std::string("cannot open ") + path + ": " + strerror(errno);
		return CS_E_IO;
	}
	s->settle();
	s->vcd = new Vcd;
	s->vcd->file = f;
	s->vcd->header(s->table);
	s->vcd->sample(s->cycle * 10);
	return CS_OK;
}

int cs_vcd_close(cs_sim *s) {
	if (!s->vcd)
		return CS_E_STATE;
	s->close_vcd();
	return CS_OK;
}

} // extern "C"
