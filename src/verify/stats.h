// Statistics for the load generator: a latency histogram with bounded memory and a
// timeline of outcomes in fixed 10 ms buckets, from which the longest outage is derived.
//
// These are plain values with no I/O, so they are unit-tested on synthetic data.
// Thread-safety: none; each instance is owned by one thread (the load loop) and
// handed over by value in the report once the run is over.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

namespace serverswap::verify {

// Log-linear histogram of microsecond latencies: values below 128 us are exact, larger
// ones fall in one of 64 buckets per power of two (at most 1.6% relative error). Memory
// stays a few kilobytes however many requests a long benchmark makes, where keeping every
// sample would grow without bound.
class LatencyHistogram {
 public:
  void record(uint64_t micros);
  void merge(const LatencyHistogram& other);

  uint64_t count() const { return count_; }
  uint64_t max() const { return max_; }
  // The smallest recorded bucket bound at or below which `fraction` (0..1] of the samples
  // lie, capped at the exact maximum. 0 when nothing was recorded.
  uint64_t percentile(double fraction) const;

 private:
  static size_t index_of(uint64_t micros);
  static uint64_t upper_bound_of(size_t index);

  std::vector<uint64_t> buckets_;
  uint64_t count_ = 0;
  uint64_t max_ = 0;
};

// Counts of successful and failed requests per 10 ms of the run, indexed by completion time.
class Timeline {
 public:
  static constexpr std::chrono::milliseconds kBucket{10};

  void record(std::chrono::nanoseconds since_start, bool ok);
  // Makes the timeline cover exactly `run_length` (rounded up to whole buckets), so that
  // a silent tail of the run counts as an outage too.
  void cover(std::chrono::nanoseconds run_length);

  size_t size() const { return ok_.size(); }
  const std::vector<uint32_t>& ok() const { return ok_; }
  const std::vector<uint32_t>& failed() const { return failed_; }

 private:
  void grow_to(size_t buckets);

  std::vector<uint32_t> ok_;
  std::vector<uint32_t> failed_;
};

// The longest run of consecutive buckets, between the first and the last bucket of the
// timeline, in which no request succeeded; in milliseconds (a multiple of the bucket).
uint64_t longest_outage_ms(const Timeline& timeline);

}  // namespace serverswap::verify
