// The C ABI of Apprentice's compiled simulator (sim/compiled), written once for both engines.
//
// Each engine's harness — harness.cc (CXXRTL) and vl_harness.cc (Verilator) — defines its model
// as `struct Item` and `struct cs_sim` (the adapter below) and then includes this file, which
// defines the exported `cs_*` functions over that adapter. The whole is one shared library per
// design, loaded from Python with ctypes (sim/compiled/sim.py). Everything that runs per cycle
// lives in C++, so Python pays one foreign call per batch of cycles, not per cycle.
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
//   first settles it, so combinational logic sees the new value and a poked register's new
//   value is its current value.
// - Functions that can fail return a negative CS_E* code; cs_error() describes the last failure.
//
// The adapter: what an engine's harness defines before it includes this file.
// - `struct Item` with the fields `width`, `depth` (rows; 1 for a signal), `words` (32-bit words
//   per value, per row for memories) and the flags `memory`, `writable`, `is_input`,
//   `has_outline` (computed on demand), `fast` (a signal of at most 64 bits read in one load),
//   and `name` (a std::string or a C string).
// - `struct cs_sim` with the members
//   `std::vector<Item> table`, `std::string error`, `uint64_t cycle`, `int rst` (-1: none),
//   a pointer `clk` (null until cs_set_clock), a pointer `vcd` (null when no VCD window is open),
//   `std::vector<Snapshot> snapshots` (`Snapshot` a std::vector type), and the operations
//     settle()                  run the pending settle (see the conventions), if any;
//     tick()                    one clock cycle;
//     read64(item)              a signal of at most 64 bits (the model settled);
//     write64(item, value)      write one, `value` already masked to the width;
//     touched(item)             note a write to `item` (what the next settle must see);
//     read_words(item, words)   a signal of any width (the model settled);
//     write_words(item, words)  write one (bits above the width are to be ignored);
//     mem_read(item, start, count, words), mem_write(item, start, count, words);
//     flag(item)                a pointer whose bit 0 is a 1-bit signal's value, or null;
//     set_clock(item)           drive `item` as the clock (a 1-bit top-level input);
//     begin_run_io()            before cs_run_io's cycles;
//     save_state(), restore_state(snapshot)   the whole design state;
//     open_vcd(file), close_vcd().

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
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

namespace {

inline uint64_t mask64(uint32_t width) {
	return width >= 64 ? ~uint64_t(0) : ((uint64_t(1) << width) - 1);
}

inline const char *c_name(const std::string &name) {
	return name.c_str();
}

inline const char *c_name(const char *name) {
	return name;
}

int check_signal(cs_sim *s, int id) {
	if (id < 0 || size_t(id) >= s->table.size())
		return CS_E_ID;
	if (s->table[id].memory)
		return CS_E_KIND;
	return CS_OK;
}

int check_memory(cs_sim *s, int id, uint64_t start, uint64_t count) {
	if (id < 0 || size_t(id) >= s->table.size())
		return CS_E_ID;
	const Item &item = s->table[id];
	if (!item.memory)
		return CS_E_KIND;
	if (start > item.depth || count > item.depth - start)
		return CS_E_RANGE;
	return CS_OK;
}

// A clock or reset: a 1-bit top-level input read and written in one access.
bool is_control_input(const Item &item) {
	return !item.memory && item.width == 1 && item.is_input && item.fast;
}

} // namespace

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
	return c_name(s->table[id].name);
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
	if (!is_control_input(clk)) {
		s->error = "the clock must be a 1-bit top-level input";
		return CS_E_KIND;
	}
	if (rst_id >= 0 && !is_control_input(s->table[rst_id])) {
		s->error = "the reset must be a 1-bit top-level input";
		return CS_E_KIND;
	}
	s->set_clock(clk);
	s->rst = rst_id;
	return CS_OK;
}

uint64_t cs_cycle(cs_sim *s) {
	return s->cycle;
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
	s->write64(item, value & mask64(item.width));
	s->touched(item);
	return CS_OK;
}

// Any width: `words` holds ceil(width / 32) little-endian 32-bit words.
int cs_get_words(cs_sim *s, int id, uint32_t *words) {
	int rc = check_signal(s, id);
	if (rc < 0)
		return rc;
	const Item &item = s->table[id];
	s->settle();
	s->read_words(item, words);
	return CS_OK;
}

int cs_set_words(cs_sim *s, int id, const uint32_t *words) {
	int rc = check_signal(s, id);
	if (rc < 0)
		return rc;
	const Item &item = s->table[id];
	if (!item.writable)
		return CS_E_READONLY;
	s->write_words(item, words);
	s->touched(item);
	return CS_OK;
}

// Backdoor access to rows [start, start + count) of memory `id`: `words` holds `count` rows of
// ceil(width / 32) words each.
int cs_mem_read(cs_sim *s, int id, uint64_t start, uint64_t count, uint32_t *words) {
	int rc = check_memory(s, id, start, count);
	if (rc < 0)
		return rc;
	s->mem_read(s->table[id], start, count, words);
	return CS_OK;
}

int cs_mem_write(cs_sim *s, int id, uint64_t start, uint64_t count, const uint32_t *words) {
	int rc = check_memory(s, id, start, count);
	if (rc < 0)
		return rc;
	const Item &item = s->table[id];
	s->mem_write(item, start, count, words);
	s->touched(item);
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
	s->touched(rst);
	for (uint64_t i = 0; i < n; i++)
		s->tick();
	s->write64(rst, 0);
	s->touched(rst);
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
	if (const auto *flag = s->flag(item)) {
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
	s->begin_run_io();
	for (uint64_t i = 0; i < n; i++) {
		for (int j = 0; j < n_in; j++)
			s->write64(*ins[j], in_values[i * n_in + j] & mask64(ins[j]->width));
		s->tick();
		for (int k = 0; k < n_out; k++)
			out_values[i * n_out + k] = s->read64(*outs[k]);
	}
	return CS_OK;
}

// Save the whole design state (every register, input, memory); returns the snapshot's id (≥ 0).
int cs_snapshot(cs_sim *s) {
	s->settle();
	s->snapshots.push_back(s->save_state());
	return int(s->snapshots.size() - 1);
}

// Put the design back into the state saved by cs_snapshot (the cycle count is not restored).
int cs_restore(cs_sim *s, int id) {
	if (id < 0 || size_t(id) >= s->snapshots.size() || s->snapshots[id].empty())
		return CS_E_ID;
	s->restore_state(s->snapshots[id]);
	return CS_OK;
}

// Free a snapshot's storage (its id is not reused).
int cs_snapshot_free(cs_sim *s, int id) {
	if (id < 0 || size_t(id) >= s->snapshots.size())
		return CS_E_ID;
	cs_sim::Snapshot().swap(s->snapshots[id]);
	return CS_OK;
}

// Start recording every signal (memories excluded) into a VCD file, from the current state on.
// VCD time: 10 units per cycle, the state after `c` cycles at 10·c, the rising edge of cycle `c`
// at 10·c + 5.
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
	s->open_vcd(f);
	return CS_OK;
}

int cs_vcd_close(cs_sim *s) {
	if (!s->vcd)
		return CS_E_STATE;
	s->close_vcd();
	return CS_OK;
}

} // extern "C"
