// The C harness of Apprentice's compiled simulator (sim/compiled).
//
// Compiled together with the C++ that Yosys's `write_cxxrtl` generated for a design (`design.cc`,
// top module `top`) into one shared library, loaded from Python with ctypes. Everything that runs
// per cycle lives here, so Python pays one foreign call per batch of cycles, not per cycle.
//
// Conventions
// - Signals and memories are *items*, named as CXXRTL names them relative to the top module:
//   the hierarchy joined by spaces ("mac acc"). Python lists them once (cs_item_count,
//   cs_item_name: the id is the index) and then uses the integer id.
// - Values travel as little-endian arrays of 32-bit words (CXXRTL's chunks), ceil(width / 32) per
//   value; items of at most 64 bits also have a uint64 fast path.
// - One clock cycle: inputs as set, clock high, step (the rising edge: flip-flops and memory write
//   ports update), clock low, step (combinational logic settles). After a cycle every item reads
//   as it would in Amaranth's simulator after `await ctx.tick()`.
// - A write to an item (cs_set*, cs_mem_write) marks the model dirty; the next read or cycle
//   first runs one step without a clock edge, so combinational logic sees the new value and a
//   poked register's `next` becomes its current value.
// - Functions that can fail return a negative CS_E* code; cs_error() describes the last failure.

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

// Bump when the C ABI below changes; the Python driver refuses a library of another version.
#define CS_ABI_VERSION 2

enum {
	CS_OK          =  0,
	CS_E_ID        = -1,   // no such item id
	CS_E_READONLY  = -2,   // the item cannot be written (comb-driven or constant)
	CS_E_KIND      = -3,   // memory used as a signal, or a signal as a memory
	CS_E_WIDTH     = -4,   // the operation needs an item of at most 64 bits (or exactly 1 bit)
	CS_E_RANGE     = -5,   // memory rows out of range
	CS_E_IO        = -6,   // file error (VCD)
	CS_E_STATE     = -7,   // no clock/reset configured, or VCD already open/closed
};

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

inline uint64_t mask64(uint32_t width) {
	return width >= 64 ? ~uint64_t(0) : ((uint64_t(1) << width) - 1);
}

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
	std::vector<std::vector<chunk_t>> snapshots;
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

	// One clock cycle (see the conventions at the top). VCD time: 10 units per cycle, the state
	// after `c` cycles at 10·c, the rising edge of cycle `c` at 10·c + 5.
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
		value &= mask64(item.width);
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
	return s->table[id].name.c_str();
}

// Describe item `id`: width, depth (rows; 1 for a signal), and flags:
// bit 0 memory, bit 1 writable, bit 2 top-level input, bit 3 computed on demand, bit 4 fast path.
int cs_item_info(cs_sim *s, int id, uint32_t *width, uint32_t *depth, uint32_t *flags) {
	if (id < 0 || size_t(id) >= s->table.size())
		return CS_E_ID;
	const Item &item = s->table[id];
	*width = item.width;
	*depth = item.depth;
	*flags = (item.memory ? 1 : 0) | (item.writable ? 2 : 0) | (item.is_input ? 4 : 0) |
	         (item.has_outline ? 8 : 0) | (item.fast ? 16 : 0);
	return CS_OK;
}

// Name the clock input (required before any cycle) and the reset input (`rst_id` < 0: none).
int cs_set_clock(cs_sim *s, int clk_id, int rst_id) {
	if (clk_id < 0 || size_t(clk_id) >= s->table.size() ||
	    (rst_id >= 0 && size_t(rst_id) >= s->table.size()))
		return CS_E_ID;
	const Item &clk = s->table[clk_id];
	if (clk.memory || clk.width != 1 || !clk.is_input || !clk.fast) {
		s->error = "the clock must be a 1-bit top-level input";
		return CS_E_KIND;
	}
	if (rst_id >= 0) {
		const Item &rst = s->table[rst_id];
		if (rst.memory || rst.width != 1 || !rst.is_input || !rst.fast) {
			s->error = "the reset must be a 1-bit top-level input";
			return CS_E_KIND;
		}
	}
	s->clk = clk.parts[0].next;
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

int cs_get64(cs_sim *s, int id, uint64_t *value) {
	int rc = check_signal(s, id);
	if (rc < 0)
		return rc;
	const Item &item = s->table[id];
	if (item.width > 64)
		return CS_E_WIDTH;
	s->settle();
	*value = s->read64(item);
	return CS_OK;
}

int cs_set64(cs_sim *s, int id, uint64_t value) {
	int rc = check_signal(s, id);
	if (rc < 0)
		return rc;
	const Item &item = s->table[id];
	if (!item.writable)
		return CS_E_READONLY;
	if (item.width > 64)
		return CS_E_WIDTH;
	s->write64(item, value);
	s->dirty = true;
	return CS_OK;
}

// Any width: `words` holds ceil(width / 32) little-endian 32-bit words.
int cs_get_words(cs_sim *s, int id, uint32_t *words) {
	int rc = check_signal(s, id);
	if (rc < 0)
		return rc;
	const Item &item = s->table[id];
	s->settle();
	if (item.has_outline)
		s->eval_outlines(item);
	for (uint32_t i = 0; i < item.words; i++)
		words[i] = 0;
	for (auto &part : item.parts)
		put_bits(words, part.lsb_at, part.curr, part.width);
	return CS_OK;
}

int cs_set_words(cs_sim *s, int id, const uint32_t *words) {
	int rc = check_signal(s, id);
	if (rc < 0)
		return rc;
	const Item &item = s->table[id];
	if (!item.writable)
		return CS_E_READONLY;
	// Mask the unused high bits of the last word (CXXRTL requires them to be zero).
	s->scratch.assign(words, words + item.words);
	if (item.width % 32)
		s->scratch[item.words - 1] &= (1u << (item.width % 32)) - 1;
	for (auto &part : item.parts)
		get_bits(part.next, s->scratch.data(), part.lsb_at, part.width);
	s->dirty = true;
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

// Backdoor access to rows [start, start + count) of memory `id`: `words` holds `count` rows of
// ceil(width / 32) words each (exactly CXXRTL's storage layout, so this is a plain copy).
int cs_mem_read(cs_sim *s, int id, uint64_t start, uint64_t count, uint32_t *words) {
	int rc = check_memory(s, id, start, count);
	if (rc < 0)
		return rc;
	const Item &item = s->table[id];
	memcpy(words, item.parts[0].curr + start * item.words, count * item.words * sizeof(chunk_t));
	return CS_OK;
}

int cs_mem_write(cs_sim *s, int id, uint64_t start, uint64_t count, const uint32_t *words) {
	int rc = check_memory(s, id, start, count);
	if (rc < 0)
		return rc;
	const Item &item = s->table[id];
	chunk_t *rows = item.parts[0].curr + start * item.words;
	memcpy(rows, words, count * item.words * sizeof(chunk_t));
	if (item.width % 32) {
		chunk_t top_mask = (1u << (item.width % 32)) - 1;
		for (uint64_t r = 0; r < count; r++)
			rows[r * item.words + item.words - 1] &= top_mask;
	}
	s->dirty = true;
	return CS_OK;
}

// Run `n` clock cycles.
int cs_step(cs_sim *s, uint64_t n) {
	if (!s->clk)
		return CS_E_STATE;
	for (uint64_t i = 0; i < n; i++)
		s->tick();
	return CS_OK;
}

// Hold reset high for `n` cycles, then release it (and settle).
int cs_reset(cs_sim *s, uint64_t n) {
	if (!s->clk || s->rst < 0)
		return CS_E_STATE;
	const Item &rst = s->table[s->rst];
	s->write64(rst, 1);
	s->dirty = true;
	for (uint64_t i = 0; i < n; i++)
		s->tick();
	s->write64(rst, 0);
	s->dirty = true;
	s->settle();
	return CS_OK;
}

// Run cycles until the 1-bit item `id` reads 1 (checked before every cycle, so a condition that
// already holds runs no cycle) or `max_cycles` have run. Returns the cycles run (≥ 0) or an error.
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
	if (item.fast) {
		const chunk_t *flag = item.parts[0].curr;
		while (n < max_cycles && !(*flag & 1)) {
			s->tick();
			n++;
		}
	} else {
		while (n < max_cycles && !(s->read64(item) & 1)) {
			s->tick();
			n++;
		}
	}
	return int64_t(n);
}

// Run `n` cycles driving and sampling signals of at most 64 bits: before cycle `i`, input
// `in_ids[j]` (a top-level input) takes `in_values[i * n_in + j]`; after it, signal `out_ids[k]`
// is read into `out_values[i * n_out + k]`.
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
		if (!item.is_input || !item.writable)
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
	for (uint64_t i = 0; i < n; i++) {
		for (int j = 0; j < n_in; j++)
			s->write64(*ins[j], in_values[i * n_in + j]);
		s->tick();
		for (int k = 0; k < n_out; k++)
			out_values[i * n_out + k] = s->read64(*outs[k]);
	}
	return CS_OK;
}

// Save the whole design state (every register, input, memory); returns the snapshot's id (≥ 0).
int cs_snapshot(cs_sim *s) {
	if (s->state.empty())
		s->collect_state();
	s->settle();
	std::vector<chunk_t> data;
	for (auto &r : s->state)
		data.insert(data.end(), r.curr, r.curr + r.chunks);
	s->snapshots.push_back(std::move(data));
	return int(s->snapshots.size() - 1);
}

// Put the design back into the state saved by cs_snapshot (the cycle count is not restored).
int cs_restore(cs_sim *s, int id) {
	if (id < 0 || size_t(id) >= s->snapshots.size() || s->snapshots[id].empty())
		return CS_E_ID;
	const chunk_t *data = s->snapshots[id].data();
	for (auto &r : s->state) {
		memcpy(r.curr, data, r.chunks * sizeof(chunk_t));
		if (r.next)
			memcpy(r.next, data, r.chunks * sizeof(chunk_t));
		data += r.chunks;
	}
	s->dirty = true;
	s->settle();
	return CS_OK;
}

// Free a snapshot's storage (its id is not reused).
int cs_snapshot_free(cs_sim *s, int id) {
	if (id < 0 || size_t(id) >= s->snapshots.size())
		return CS_E_ID;
	std::vector<chunk_t>().swap(s->snapshots[id]);
	return CS_OK;
}

// Start recording every signal (memories excluded) into a VCD file, from the current state on.
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
	s->vcd_file = f;
	s->vcd = new cxxrtl::vcd_writer;
	s->vcd->timescale(1, "ns");
	s->vcd->add_without_memories(s->items);
	s->sample_vcd(s->cycle * 10);
	return CS_OK;
}

int cs_vcd_close(cs_sim *s) {
	if (!s->vcd)
		return CS_E_STATE;
	s->close_vcd();
	return CS_OK;
}

} // extern "C"
