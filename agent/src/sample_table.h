// The agent's record of sampled allocations: interned call stacks with their live and total sampled
// figures, and the map from each live sampled pointer to its stack and size.
//
// All storage comes from mmap. One mutex guards the stacks and the map; sampled events are rare at
// the default period, and no lock is taken for a pointer that was never sampled: a counter per
// bucket of pointers (MaybeSampled) is read with one relaxed load first. Stack records are never
// moved or freed, so a record's frames may be read without the lock once its pointer is known.
// Call stacks must be captured before any function here is called (the stack walker may take the
// loader's lock; the table lock is never held while walking).
//
// The table also keeps the peak of the current window (from the previous profile to the next): an
// estimate of the bytes the live samples stand for (each sample weighted by pprof's unsampling
// factor for its size, size / (1 - exp(-size / period)); in exact mode its size), and a snapshot of
// every stack's live figures taken whenever a sample raises that estimate above the snapshot's by
// more than max(4 periods (exact: 1 MiB), 1/8 of the snapshot's). The estimate, not the raw sum of
// sampled sizes, decides: a sample of a small block stands for about one period of memory, and
// a raw sum would barely move while a heap of small blocks grows. The copy is taken under the lock
// the sample already holds; the geometric step makes it rare.
#ifndef LEAKGATE_AGENT_SRC_SAMPLE_TABLE_H_
#define LEAKGATE_AGENT_SRC_SAMPLE_TABLE_H_

#include <stddef.h>
#include <stdint.h>

#include <atomic>

#include "mapped_memory.h"

namespace leakgate::agent {

constexpr uint32_t kNoStack = UINT32_MAX;

struct StackRecord {
  uint64_t hash;
  int64_t live_objects;   // sampled, not yet freed
  int64_t live_bytes;
  int64_t alloc_objects;  // sampled since load
  int64_t alloc_bytes;
  const uintptr_t* frames;
  uint32_t depth;
  uint32_t id;
};

struct LiveSample {
  uint32_t stack_id;
  uint64_t size;
};

// Counters of live samples by bucket of addresses, read without the lock. The bucket is the
// address in 16-byte units modulo the table size: neighbouring blocks share cache lines of the
// table, so that a run of frees touches few of its lines.
constexpr int kSampleFilterBits = 16;
extern std::atomic<uint32_t> g_sample_filter[size_t{1} << kSampleFilterBits];

inline size_t SampleFilterSlot(const void* pointer) {
  return (reinterpret_cast<uintptr_t>(pointer) >> 4) & ((size_t{1} << kSampleFilterBits) - 1);
}

// Lock-free hint: false means `pointer` is certainly not a live sample.
inline bool MaybeSampled(const void* pointer) {
  return g_sample_filter[SampleFilterSlot(pointer)].load(std::memory_order_relaxed) != 0;
}

// Interns the stack and records `pointer` as a live sample of `size` bytes on it. False when memory
// for the tables could not be had (the sample is dropped).
bool RecordSample(const void* pointer, uint64_t size, const uintptr_t* frames, int depth);

// Removes `pointer` from the live samples; true and its record in `removed` when it was one.
bool RemoveSample(const void* pointer, LiveSample* removed);

// Puts back a sample taken out with RemoveSample (a realloc that failed).
void RestoreSample(const void* pointer, const LiveSample& sample);

// Interns a stack without a sample (creation stacks of threads and sockets). kNoStack on failure.
uint32_t InternStack(const uintptr_t* frames, int depth);

// The record of an interned stack, or nullptr.
const StackRecord* FindStack(uint32_t id);

struct StackFigures {
  const StackRecord* record;
  int64_t live_objects;
  int64_t live_bytes;
  int64_t alloc_objects;
  int64_t alloc_bytes;
};

// A stack's live samples at the moment of the peak snapshot.
struct PeakFigures {
  const StackRecord* record;
  int64_t live_objects;
  int64_t live_bytes;
};

// Rows copied out of the table for the profile writer, in mmap'd memory owned by the copy.
template <typename Row>
class CopiedRows {
 public:
  CopiedRows() = default;
  ~CopiedRows() { UnmapPages(rows_, capacity_ * sizeof(Row)); }
  CopiedRows(const CopiedRows&) = delete;
  CopiedRows& operator=(const CopiedRows&) = delete;

  size_t size() const { return size_; }
  const Row& operator[](size_t i) const { return rows_[i]; }
  size_t capacity() const { return capacity_; }

  // Room for `capacity` rows; the contents are dropped. False when the kernel refuses (the rows
  // are then unchanged).
  bool Reserve(size_t capacity) {
    auto* rows = static_cast<Row*>(MapPages(capacity * sizeof(Row)));
    if (rows == nullptr) return false;
    UnmapPages(rows_, capacity_ * sizeof(Row));
    rows_ = rows;
    capacity_ = capacity;
    size_ = 0;
    return true;
  }
  void Clear() { size_ = 0; }
  // The caller has made room.
  void Append(const Row& row) { rows_[size_++] = row; }

 private:
  Row* rows_ = nullptr;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

using LiveStacksSnapshot = CopiedRows<StackFigures>;
using PeakStacksSnapshot = CopiedRows<PeakFigures>;

// Under one acquisition of the lock: the figures of every stack with live samples into `live`;
// the peak snapshot of the current window into `peak` (the live state itself when the estimate is
// now above the snapshot's); then a new window begins at the live state. False when memory for
// the copies could not be had (the window then goes on).
bool TakeProfileFigures(LiveStacksSnapshot* live, PeakStacksSnapshot* peak);

// The period the estimate weighs samples with: the sample period, 0 for exact. The live samples
// and the peak snapshot's figure are weighed again, so that the estimate always reads the live
// samples as a profile with this period is read.
void SetEstimatePeriod(int64_t period);

int64_t LiveSampleCount();

// Fork handling: the table lock is held across fork() and released on both sides.
void LockSampleTable();
void UnlockSampleTable();

}  // namespace leakgate::agent

#endif  // LEAKGATE_AGENT_SRC_SAMPLE_TABLE_H_
