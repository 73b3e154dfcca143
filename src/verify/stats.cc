#include "verify/stats.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cmath>

namespace serverswap::verify {
namespace {

// 128 exact values, then 64 sub-buckets per power of two.
constexpr uint64_t kExact = 128;
constexpr uint64_t kSubBuckets = 64;
constexpr int kExactBits = 7;

}  // namespace

size_t LatencyHistogram::index_of(uint64_t micros) {
  if (micros < kExact) return static_cast<size_t>(micros);
  const int msb = std::bit_width(micros) - 1;  // >= kExactBits
  const int shift = msb - (kExactBits - 1);
  const uint64_t sub = (micros >> shift) - kSubBuckets;  // 0..63
  return static_cast<size_t>(kExact + static_cast<uint64_t>(msb - kExactBits) * kSubBuckets + sub);
}

uint64_t LatencyHistogram::upper_bound_of(size_t index) {
  if (index < kExact) return index;
  const uint64_t octave = (index - kExact) / kSubBuckets;
  const uint64_t sub = (index - kExact) % kSubBuckets + kSubBuckets;
  const uint64_t shift = octave + 1;
  return ((sub + 1) << shift) - 1;
}

void LatencyHistogram::record(uint64_t micros) {
  const size_t index = index_of(micros);
  if (index >= buckets_.size()) buckets_.resize(index + 1);
  ++buckets_[index];
  ++count_;
  max_ = std::max(max_, micros);
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  if (other.buckets_.size() > buckets_.size()) buckets_.resize(other.buckets_.size());
  for (size_t i = 0; i < other.buckets_.size(); ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  max_ = std::max(max_, other.max_);
}

uint64_t LatencyHistogram::percentile(double fraction) const {
  if (count_ == 0) return 0;
  const double wanted = std::ceil(std::clamp(fraction, 0.0, 1.0) * static_cast<double>(count_));
  const uint64_t rank = std::max<uint64_t>(1, static_cast<uint64_t>(wanted));
  uint64_t seen = 0;
  for (size_t i = 0; i < buckets_.size(); ++i) {
    seen += buckets_[i];
    if (seen >= rank) return std::min(upper_bound_of(i), max_);
  }
  return max_;
}

void Timeline::grow_to(size_t buckets) {
  if (buckets <= ok_.size()) return;
  ok_.resize(buckets);
  failed_.resize(buckets);
}

void Timeline::record(std::chrono::nanoseconds since_start, bool ok) {
  const auto index = static_cast<size_t>(std::max<int64_t>(0, since_start / kBucket));
  grow_to(index + 1);
  ++(ok ? ok_ : failed_)[index];
}

void Timeline::cover(std::chrono::nanoseconds run_length) {
  const auto bucket_ns = std::chrono::nanoseconds(kBucket).count();
  const auto buckets = static_cast<size_t>((run_length.count() + bucket_ns - 1) / bucket_ns);
  // Completions recorded after the nominal end (a callback already queued when the
  // deadline fired) stay in the timeline rather than being silently dropped.
  grow_to(std::max<size_t>(buckets, 1));
}

uint64_t longest_outage_ms(const Timeline& timeline) {
  size_t longest = 0;
  size_t current = 0;
  for (uint32_t ok : timeline.ok()) {
    current = ok == 0 ? current + 1 : 0;
    longest = std::max(longest, current);
  }
  return static_cast<uint64_t>(longest) * static_cast<uint64_t>(Timeline::kBucket.count());
}

}  // namespace serverswap::verify
