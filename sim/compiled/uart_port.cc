// A simulated serial port for Apprentice's compiled simulator (sim/compiled/serial.py).
//
// A UART bit-banger in C++: it drives a design's 1-bit receive pin from a queue of bytes, as an
// 8N1 waveform with `divisor` clock cycles per bit, runs the model cycle by cycle, and decodes
// the design's transmit pin back into bytes. It is its own small shared library: it reaches the
// model only through the harness's exported C functions (harness_abi.h: cs_set64, cs_get64,
// cs_step), whose addresses Python passes to su_create. So the per-bit work runs in C++ without
// the harness or the design's C++ knowing about it.
//
// Timing (as sim.hostlink.PysimLink's pin pump): in each cycle the receive pin takes its
// level, one clock cycle runs, then the transmit pin is sampled. The decoder samples mid-bit:
// `divisor / 2` cycles after the start bit's first low sample, then every `divisor` cycles; a
// byte whose stop bit is low is dropped and counted as a framing error.
//
// Queue items: 0..255 a byte; 256..511 the byte (item - 256) with a low stop bit (a framing
// error at the receiver); a negative item -n keeps the line idle (high) for n cycles.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

extern "C" {
typedef int (*cs_step_fn)(void *, uint64_t);
typedef int (*cs_set64_fn)(void *, int, uint64_t);
typedef int (*cs_get64_fn)(void *, int, uint64_t *);
}

#define SU_ABI_VERSION 1

enum { SU_OK = 0, SU_E_ARG = -8 };

struct su_port {
	void *sim;
	cs_step_fn step;
	cs_set64_fn set64;
	cs_get64_fn get64;
	int rx_id, tx_id;
	uint32_t divisor;
	// sender (host -> design's rx pin)
	std::deque<int32_t> queue;
	int send_bit = -1;          // bit of the frame being sent (0 start .. 9 stop); -1: none
	uint32_t send_left = 0;     // cycles left in this bit, or of the idle gap
	uint32_t send_frame = 0;    // the 10 levels of the frame, LSB first
	bool in_gap = false;
	int rx_level = -1;          // what the pin was last set to (-1: not yet)
	// receiver (design's tx pin -> host)
	std::vector<uint8_t> out;
	size_t out_head = 0;
	int recv_bits = -1;         // bits sampled of the frame being received; -1: idle
	uint32_t recv_wait = 0;     // cycles to the next sample
	uint32_t recv_shreg = 0;
	uint64_t framing_errors = 0;
	uint64_t cycles = 0;

	// The level to drive in this cycle (advances the sender by one cycle).
	int next_level() {
		for (;;) {
			if (in_gap) {
				if (send_left) {
					send_left--;
					return 1;
				}
				in_gap = false;
			}
			if (send_bit >= 0) {
				if (send_left) {
					send_left--;
					return (send_frame >> send_bit) & 1;
				}
				if (++send_bit < 10) {
					send_left = divisor - 1;
					return (send_frame >> send_bit) & 1;
				}
				send_bit = -1;
			}
			if (queue.empty())
				return 1;
			int32_t item = queue.front();
			queue.pop_front();
			if (item < 0) {
				in_gap = true;
				send_left = uint32_t(-int64_t(item));
			} else {
				uint32_t stop = item >= 256 ? 0 : 1;
				send_frame = (uint32_t(item & 0xFF) << 1) | (stop << 9);
				send_bit = 0;
				send_left = divisor;
			}
		}
	}

	bool sending() const {
		return send_bit >= 0 || (in_gap && send_left) || !queue.empty();
	}

	void sample(int level) {
		if (recv_bits < 0) {
			if (!level) {
				recv_bits = 0;
				recv_wait = divisor / 2;
				recv_shreg = 0;
			}
			return;
		}
		if (--recv_wait)
			return;
		recv_wait = divisor;
		if (recv_bits == 0 && level) {        // a glitch, not a start bit
			recv_bits = -1;
			return;
		}
		if (recv_bits >= 1 && recv_bits <= 8)
			recv_shreg |= uint32_t(level) << (recv_bits - 1);
		if (++recv_bits == 10) {
			recv_bits = -1;
			if (level)
				out.push_back(uint8_t(recv_shreg));
			else
				framing_errors++;
		}
	}

	size_t available() const {
		return out.size() - out_head;
	}
};

extern "C" {

int su_abi_version() {
	return SU_ABI_VERSION;
}

su_port *su_create(void *sim, void *step, void *set64, void *get64, int rx_id, int tx_id,
                   uint32_t divisor) {
	if (!sim || !step || !set64 || !get64 || divisor < 2)
		return nullptr;
	su_port *p = new su_port;
	p->sim = sim;
	p->step = reinterpret_cast<cs_step_fn>(step);
	p->set64 = reinterpret_cast<cs_set64_fn>(set64);
	p->get64 = reinterpret_cast<cs_get64_fn>(get64);
	p->rx_id = rx_id;
	p->tx_id = tx_id;
	p->divisor = divisor;
	return p;
}

void su_destroy(su_port *p) {
	delete p;
}

// Append `n` queue items (see the top of the file).
int su_write(su_port *p, const int32_t *items, uint64_t n) {
	for (uint64_t i = 0; i < n; i++) {
		if (items[i] > 511)
			return SU_E_ARG;
		p->queue.push_back(items[i]);
	}
	return SU_OK;
}

// Run at most `max_cycles` cycles; stop early once `want` bytes wait to be read (want > 0), or,
// with `until_sent`, once the queue is empty and the last frame or gap has been sent. Returns
// the cycles run (>= 0) or a harness error code (< 0).
int64_t su_run(su_port *p, uint64_t max_cycles, uint64_t want, int until_sent) {
	uint64_t n = 0;
	while (n < max_cycles) {
		if (want && p->available() >= want)
			break;
		if (until_sent && !p->sending())
			break;
		int level = p->next_level();
		if (level != p->rx_level) {
			int rc = p->set64(p->sim, p->rx_id, uint64_t(level));
			if (rc < 0)
				return rc;
			p->rx_level = level;
		}
		int rc = p->step(p->sim, 1);
		if (rc < 0)
			return rc;
		uint64_t tx = 1;
		rc = p->get64(p->sim, p->tx_id, &tx);
		if (rc < 0)
			return rc;
		p->sample(int(tx & 1));
		n++;
	}
	p->cycles += n;
	return int64_t(n);
}

// Move up to `n` received bytes into `buf`; returns how many.
uint64_t su_read(su_port *p, uint8_t *buf, uint64_t n) {
	uint64_t k = p->available();
	if (k > n)
		k = n;
	for (uint64_t i = 0; i < k; i++)
		buf[i] = p->out[p->out_head + i];
	p->out_head += k;
	if (p->out_head == p->out.size()) {
		p->out.clear();
		p->out_head = 0;
	}
	return k;
}

uint64_t su_available(su_port *p) {
	return p->available();
}

// Queue items not yet started, plus 1 while a frame or gap is being sent.
uint64_t su_pending(su_port *p) {
	return p->queue.size() + ((p->send_bit >= 0 || (p->in_gap && p->send_left)) ? 1 : 0);
}

uint64_t su_framing_errors(su_port *p) {
	return p->framing_errors;
}

uint64_t su_cycles(su_port *p) {
	return p->cycles;
}

// Forget queued input (a frame being sent is cut at once: the line goes idle) and every byte
// received but not read; the receiver's decoder keeps its state.
void su_clear(su_port *p, int input, int output) {
	if (input) {
		p->queue.clear();
		p->send_bit = -1;
		p->in_gap = false;
		p->send_left = 0;
	}
	if (output) {
		p->out.clear();
		p->out_head = 0;
	}
}

} // extern "C"

extern "C" {

// Back to the state of a new port: nothing queued or received, decoder idle, the pin driven
// again before the next cycle, counters zero (after the model was put back into a snapshot).
void su_reset(su_port *p) {
	su_clear(p, 1, 1);
	p->rx_level = -1;
	p->recv_bits = -1;
	p->recv_wait = 0;
	p->framing_errors = 0;
}

} // extern "C"
