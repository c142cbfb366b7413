// The CXXRTL engine of Apprentice's compiled simulator (sim/compiled).
//
// Compiled together with the C++ that Yosys's `write_cxxrtl` generated for a design (`design.cc`,
// top module `top`) into one shared library. This file is the engine's adapter — its items over
// CXXRTL's debug information, its clock cycle, its snapshots and VCD windows — and includes
// harness_abi.h, the C ABI both engines share (its conventions are written there).
// - A write goes to an item's `next`; the settle after it runs one step without a clock edge, so
//   combinational logic sees the new value and a poked register's `next` becomes its current
//   value.
// - Signals the optimiser removed are computed on demand (CXXRTL's outlines) when read.

// Out-of-range memory accesses behave as in Amaranth (reads give 0, writes are dropped) instead
// of aborting the host process.
#define CXXRTL_ASSERT(x) ((void)0)

#include "design.cc"
#include <cxxrtl/cxxrtl_vcd.h>

#include <cstdio>
#include <cstring>
#include <set>
#include <string>
#include <vector>

using cxxrtl::chunk_t;
using cxxrtl::debug_item;

namespace {

struct Item {
	std::string name;
	std::vector<debug_item> parts;   // sorted by lsb_at
	uint32_t width;                  // total width over all parts
	uint32_t depth;                  // 1 for signals, rows for memories
	uint32_t words;                  // 32-bit words per value (per row for memories)
	bool memory;
	bool writable;                   // every part has `next` and none is comb-driven
	bool is_input;                   // a top-level input port
	bool has_outline;                // some part is computed on demand (debug_eval)
	bool fast;                       // one part at bit 0 of at most 64 bits, no outline
};

// Copy `width` bits from `src` (starting at bit 0) to `dst` starting at bit `at`.
void put_bits(uint32_t *dst, uint32_t at, const chunk_t *src, uint32_t width) {
	for (uint32_t i = 0; i < width; i++) {
		uint32_t bit = (src[i / 32] >> (i % 32)) & 1;
		uint32_t j = at + i;
		dst[j / 32] = (dst[j / 32] & ~(1u << (j % 32))) | (bit << (j % 32));
	}
}

// Copy `width` bits from `src` starting at bit `at` to `dst` (starting at bit 0); the unused high
// bits of `dst`'s last chunk are cleared (CXXRTL requires them to be zero).
void get_bits(chunk_t *dst, const uint32_t *src, uint32_t at, uint32_t width) {
	uint32_t chunks = (width + 31) / 32;
	for (uint32_t i = 0; i < chunks; i++)
		dst[i] = 0;
	for (uint32_t i = 0; i < width; i++) {
		uint32_t j = at + i;
		uint32_t bit = (src[j / 32] >> (j % 32)) & 1;
		dst[i / 32] |= bit << (i % 32);
	}
}

} // namespace

struct cs_sim {
	cxxrtl_design::p_top top;
	cxxrtl::debug_items items;
	std::vector<Item> table;
	chunk_t *clk = nullptr;      // `next` of the clock input
	int rst = -1;                // item id of the reset input
	uint64_t cycle = 0;
	bool dirty = true;
	std::string error;
	// Snapshots (cs_snapshot): every piece of state storage, and saved copies of it.
	struct Region {
		chunk_t *curr;
		chunk_t *next;               // null for memories and unbuffered values
		size_t chunks;
	};
	std::vector<Region> state;
	using Snapshot = std::vector<chunk_t>;
	std::vector<Snapshot> snapshots;
	// VCD window
	cxxrtl::vcd_writer *vcd = nullptr;
	FILE *vcd_file = nullptr;
	std::vector<uint32_t> scratch;

	cs_sim() {
		top.debug_info(&items, /*scopes=*/nullptr, "");
		// An alias reads its target's storage but has no `next`; give it the target's, so a
		// write through any name of a signal works.
		std::map<const chunk_t *, const debug_item *> targets;
		for (auto &it : items.table)
			for (auto &part : it.second)
				if (part.type != debug_item::ALIAS && part.type != debug_item::MEMORY && part.next)
					targets[part.curr] = &part;
		for (auto &it : items.table) {
			Item item;
			item.name = it.first;
			item.parts = it.second;
			for (auto &part : item.parts) {
				auto target = targets.find(part.curr);
				if (part.type == debug_item::ALIAS && target != targets.end() &&
				    target->second->width == part.width) {
					part.next = target->second->next;
					part.flags = target->second->flags;
				}
			}
			item.width = 0;
			item.depth = item.parts[0].depth;
			item.memory = item.parts[0].type == debug_item::MEMORY;
			item.writable = true;
			item.is_input = (item.parts[0].flags & debug_item::INPUT) != 0;
			item.has_outline = false;
			for (auto &part : item.parts) {
				item.width = std::max<uint32_t>(item.width, part.lsb_at + part.width);
				if (part.next == nullptr || (part.flags & debug_item::DRIVEN_COMB))
					item.writable = false;
				if (part.type == debug_item::OUTLINE)
					item.has_outline = true;
			}
			if (item.memory)
				item.writable = true;
			item.words = (item.width + 31) / 32;
			item.fast = item.parts.size() == 1 && item.parts[0].lsb_at == 0 && item.width <= 64 &&
			            !item.has_outline && !item.memory;
			table.push_back(std::move(item));
		}
	}

	~cs_sim() {
		close_vcd();
	}

	// The storage of the whole design state: wires (registers, inputs), writable unbuffered values
	// and memories, each once. CXXRTL's debug information at -g1 and above reaches all state.
	void collect_state() {
		std::set<const chunk_t *> seen;
		for (auto &item : table)
			for (auto &part : item.parts) {
				size_t chunks = (part.width + 31) / 32;
				Region r{nullptr, nullptr, 0};
				if (part.type == debug_item::MEMORY)
					r = Region{part.curr, nullptr, chunks * part.depth};
				else if (part.type == debug_item::WIRE)
					r = Region{part.curr, part.next, chunks};
				else if (part.type == debug_item::VALUE && part.next != nullptr)
					r = Region{part.curr, nullptr, chunks};
				if (r.curr && r.chunks && seen.insert(r.curr).second)
					state.push_back(r);
			}
	}

	// One eval/commit loop without virtual dispatch.
	inline void step() {
		bool converged;
		do {
			converged = top.cxxrtl_design::p_top::eval();
		} while (top.cxxrtl_design::p_top::commit() && !converged);
	}

	inline void settle() {
		if (dirty) {
			step();
			dirty = false;
		}
	}

	inline void eval_outlines(const Item &item) {
		for (auto &part : item.parts)
			if (part.type == debug_item::OUTLINE)
				part.outline->eval();
	}

	void sample_vcd(uint64_t time) {
		vcd->sample(time);
		if (vcd->buffer.size() > (1u << 20)) {
			fwrite(vcd->buffer.data(), 1, vcd->buffer.size(), vcd_file);
			vcd->buffer.clear();
		}
	}

	void close_vcd() {
		if (vcd) {
			fwrite(vcd->buffer.data(), 1, vcd->buffer.size(), vcd_file);
			fclose(vcd_file);
			delete vcd;
			vcd = nullptr;
			vcd_file = nullptr;
		}
	}

	// One clock cycle (see the conventions in harness_abi.h, and its VCD times).
	inline void tick() {
		settle();
		*clk = 1;
		step();
		if (vcd) {
			// CXXRTL evaluates combinational logic before it commits the flip-flops, so signals
			// that depend on registers settle in the next step; settle them now (no edge: the
			// clock was committed high) so the waveform shows them change at the rising edge.
			step();
			sample_vcd(cycle * 10 + 5);
		}
		*clk = 0;
		step();
		cycle++;
		if (vcd)
			sample_vcd(cycle * 10);
	}

	inline uint64_t read64(const Item &item) {
		if (item.fast) {
			const chunk_t *c = item.parts[0].curr;
			return item.width > 32 ? (uint64_t(c[1]) << 32) | c[0] : c[0];
		}
		if (item.has_outline)
			eval_outlines(item);
		uint32_t out[2] = {0, 0};
		for (auto &part : item.parts)
			put_bits(out, part.lsb_at, part.curr, part.width);
		return (uint64_t(out[1]) << 32) | out[0];
	}

	inline void write64(const Item &item, uint64_t value) {
		if (item.fast) {
			chunk_t *c = item.parts[0].next;
			c[0] = uint32_t(value);
			if (item.width > 32)
				c[1] = uint32_t(value >> 32);
		} else {
			uint32_t in[2] = {uint32_t(value), uint32_t(value >> 32)};
			for (auto &part : item.parts)
				get_bits(part.next, in, part.lsb_at, part.width);
		}
	}

	inline void touched(const Item &) {
		dirty = true;
	}

	void read_words(const Item &item, uint32_t *words) {
		if (item.has_outline)
			eval_outlines(item);
		for (uint32_t i = 0; i < item.words; i++)
			words[i] = 0;
		for (auto &part : item.parts)
			put_bits(words, part.lsb_at, part.curr, part.width);
	}

	void write_words(const Item &item, const uint32_t *words) {
		// Mask the unused high bits of the last word (CXXRTL requires them to be zero).
		scratch.assign(words, words + item.words);
		if (item.width % 32)
			scratch[item.words - 1] &= (1u << (item.width % 32)) - 1;
		for (auto &part : item.parts)
			get_bits(part.next, scratch.data(), part.lsb_at, part.width);
	}

	// A memory's rows are exactly CXXRTL's storage layout, so these are plain copies.
	void mem_read(const Item &item, uint64_t start, uint64_t count, uint32_t *words) {
		memcpy(words, item.parts[0].curr + start * item.words,
		       count * item.words * sizeof(chunk_t));
	}

	void mem_write(const Item &item, uint64_t start, uint64_t count, const uint32_t *words) {
		chunk_t *rows = item.parts[0].curr + start * item.words;
		memcpy(rows, words, count * item.words * sizeof(chunk_t));
		if (item.width % 32) {
			chunk_t top_mask = (1u << (item.width % 32)) - 1;
			for (uint64_t r = 0; r < count; r++)
				rows[r * item.words + item.words - 1] &= top_mask;
		}
	}

	inline const chunk_t *flag(const Item &item) {
		return item.fast ? item.parts[0].curr : nullptr;
	}

	void set_clock(const Item &item) {
		clk = item.parts[0].next;
	}

	// Nothing to do: the first cycle settles pending writes together with its inputs.
	void begin_run_io() {
	}

	Snapshot save_state() {
		if (state.empty())
			collect_state();
		Snapshot data;
		for (auto &r : state)
			data.insert(data.end(), r.curr, r.curr + r.chunks);
		return data;
	}

	void restore_state(const Snapshot &snapshot) {
		const chunk_t *data = snapshot.data();
		for (auto &r : state) {
			memcpy(r.curr, data, r.chunks * sizeof(chunk_t));
			if (r.next)
				memcpy(r.next, data, r.chunks * sizeof(chunk_t));
			data += r.chunks;
		}
		dirty = true;
		settle();
	}

	void open_vcd(FILE *file) {
		vcd_file = file;
		vcd = new cxxrtl::vcd_writer;
		vcd->timescale(1, "ns");
		vcd->add_without_memories(items);
		sample_vcd(cycle * 10);
	}
};

#include "harness_abi.h"

