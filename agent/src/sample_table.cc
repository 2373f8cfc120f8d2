#include "sample_table.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

#include "mapped_memory.h"

namespace leakgate::agent {

std::atomic<uint32_t> g_sample_filter[size_t{1} << kSampleFilterBits];

namespace {

constexpr size_t kArenaChunkBytes = 1 << 20;
constexpr uint32_t kMaxStacks = 1u << 24;  // stack ids share a word with the size in the map
constexpr int kSizeBits = 40;
constexpr uint64_t kSizeMask = (uint64_t{1} << kSizeBits) - 1;
constexpr int64_t kExactPeakStep = 1 << 20;  // in exact mode a period weighs one byte
constexpr int kPeakStepPeriods = 4;

struct LiveEntry {
  uintptr_t address;  // 0: empty
  uint64_t packed;    // stack id << kSizeBits | size
};

struct Table {
  pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  StackRecord** records = nullptr;  // by id
  size_t record_count = 0;
  size_t record_capacity = 0;
  uint32_t* index = nullptr;  // open addressing on the stack hash; id + 1, 0 empty
  size_t index_capacity = 0;
  unsigned char* arena = nullptr;  // stack records and their frames
  size_t arena_used = 0;
  LiveEntry* live = nullptr;  // open addressing on the address, backward-shift deletion
  size_t live_capacity = 0;
  size_t live_count = 0;
  int64_t estimate_period = 0;  // what samples are weighed with; 0 = exact
  int64_t live_estimate = 0;    // the bytes the live samples stand for
  // The peak snapshot of the current window: the stacks with live samples when the estimate was
  // peak_estimate. A sample that takes the estimate above peak_trigger takes a new one.
  PeakFigures* peak = nullptr;
  size_t peak_count = 0;
  size_t peak_capacity = 0;
  int64_t peak_estimate = 0;
  int64_t peak_trigger = 0;
};

Table g_table;

inline uint64_t Mix(uint64_t value) {
  value ^= value >> 33;
  value *= 0xff51afd7ed558ccdULL;
  value ^= value >> 33;
  value *= 0xc4ceb9fe1a85ec53ULL;
  value ^= value >> 33;
  return value;
}

uint64_t HashFrames(const uintptr_t* frames, int depth) {
  uint64_t hash = 0x9E3779B97F4A7C15ULL ^ static_cast<uint64_t>(depth);
  for (int i = 0; i < depth; ++i) hash = Mix(hash ^ frames[i]);
  return hash;
}

// Swaps `*array` (of `old_capacity` elements) for a zeroed mapping of `new_capacity`, copying the
// first `keep` elements. False when the kernel refuses.
template <typename T>
bool Regrow(T** array, size_t old_capacity, size_t new_capacity, size_t keep) {
  auto* grown = static_cast<T*>(MapPages(new_capacity * sizeof(T)));
  if (grown == nullptr) return false;
  if (keep > 0) memcpy(grown, *array, keep * sizeof(T));
  UnmapPages(*array, old_capacity * sizeof(T));
  *array = grown;
  return true;
}

bool GrowIndex() {
  const size_t capacity = g_table.index_capacity == 0 ? 4096 : g_table.index_capacity * 2;
  auto* index = static_cast<uint32_t*>(MapPages(capacity * sizeof(uint32_t)));
  if (index == nullptr) return false;
  for (size_t id = 0; id < g_table.record_count; ++id) {
    size_t slot = g_table.records[id]->hash & (capacity - 1);
    while (index[slot] != 0) slot = (slot + 1) & (capacity - 1);
    index[slot] = static_cast<uint32_t>(id + 1);
  }
  UnmapPages(g_table.index, g_table.index_capacity * sizeof(uint32_t));
  g_table.index = index;
  g_table.index_capacity = capacity;
  return true;
}

void* ArenaAllocate(size_t bytes) {
  bytes = (bytes + 15) & ~size_t{15};
  if (g_table.arena == nullptr || g_table.arena_used + bytes > kArenaChunkBytes) {
    // The rest of a full chunk is abandoned: records never move.
    auto* chunk = static_cast<unsigned char*>(MapPages(kArenaChunkBytes));
    if (chunk == nullptr) return nullptr;
    g_table.arena = chunk;
    g_table.arena_used = 0;
  }
  void* block = g_table.arena + g_table.arena_used;
  g_table.arena_used += bytes;
  return block;
}

// Caller holds the lock.
StackRecord* InternLocked(const uintptr_t* frames, int depth) {
  const uint64_t hash = HashFrames(frames, depth);
  if (g_table.index_capacity != 0) {
    size_t slot = hash & (g_table.index_capacity - 1);
    while (g_table.index[slot] != 0) {
      StackRecord* record = g_table.records[g_table.index[slot] - 1];
      if (record->hash == hash && record->depth == static_cast<uint32_t>(depth) &&
          memcmp(record->frames, frames, sizeof(uintptr_t) * depth) == 0) {
        return record;
      }
      slot = (slot + 1) & (g_table.index_capacity - 1);
    }
  }
  if (g_table.record_count >= kMaxStacks) return nullptr;
  if ((g_table.record_count + 1) * 2 > g_table.index_capacity && !GrowIndex()) return nullptr;
  if (g_table.record_count == g_table.record_capacity) {
    const size_t capacity = g_table.record_capacity == 0 ? 4096 : g_table.record_capacity * 2;
    if (!Regrow(&g_table.records, g_table.record_capacity, capacity, g_table.record_count)) {
      return nullptr;
    }
    g_table.record_capacity = capacity;
  }
  auto* record = static_cast<StackRecord*>(
      ArenaAllocate(sizeof(StackRecord) + sizeof(uintptr_t) * static_cast<size_t>(depth)));
  if (record == nullptr) return nullptr;
  auto* stored_frames = reinterpret_cast<uintptr_t*>(record + 1);
  memcpy(stored_frames, frames, sizeof(uintptr_t) * depth);
  record->hash = hash;
  record->frames = stored_frames;
  record->depth = static_cast<uint32_t>(depth);
  record->id = static_cast<uint32_t>(g_table.record_count);
  g_table.records[g_table.record_count++] = record;
  size_t slot = hash & (g_table.index_capacity - 1);
  while (g_table.index[slot] != 0) slot = (slot + 1) & (g_table.index_capacity - 1);
  g_table.index[slot] = record->id + 1;
  return record;
}

inline size_t LiveHome(uintptr_t address) {
  return static_cast<size_t>(Mix(address)) & (g_table.live_capacity - 1);
}

bool GrowLive() {
  const size_t old_capacity = g_table.live_capacity;
  LiveEntry* old_live = g_table.live;
  const size_t capacity = old_capacity == 0 ? 4096 : old_capacity * 2;
  auto* live = static_cast<LiveEntry*>(MapPages(capacity * sizeof(LiveEntry)));
  if (live == nullptr) return false;
  g_table.live = live;
  g_table.live_capacity = capacity;
  for (size_t i = 0; i < old_capacity; ++i) {
    if (old_live[i].address == 0) continue;
    size_t slot = LiveHome(old_live[i].address);
    while (live[slot].address != 0) slot = (slot + 1) & (capacity - 1);
    live[slot] = old_live[i];
  }
  UnmapPages(old_live, old_capacity * sizeof(LiveEntry));
  return true;
}

// The slot holding `address`, or SIZE_MAX. Caller holds the lock.
size_t FindLive(uintptr_t address) {
  if (g_table.live_capacity == 0) return SIZE_MAX;
  size_t slot = LiveHome(address);
  while (g_table.live[slot].address != 0) {
    if (g_table.live[slot].address == address) return slot;
    slot = (slot + 1) & (g_table.live_capacity - 1);
  }
  return SIZE_MAX;
}

void EraseLive(size_t hole) {
  const size_t mask = g_table.live_capacity - 1;
  size_t next = hole;
  for (;;) {
    next = (next + 1) & mask;
    if (g_table.live[next].address == 0) break;
    const size_t home = LiveHome(g_table.live[next].address);
    // The entry at `next` may fill the hole unless its home lies cyclically in (hole, next].
    const bool stays = hole <= next ? (hole < home && home <= next) : (hole < home || home <= next);
    if (!stays) {
      g_table.live[hole] = g_table.live[next];
      hole = next;
    }
  }
  g_table.live[hole] = LiveEntry{0, 0};
  --g_table.live_count;
}

// The bytes one sample of `size` bytes stands for: pprof's heap_v2 unsampling factor, the
// reciprocal of the chance that an allocation of that size is sampled.
int64_t SampleWeight(uint64_t size) {
  const int64_t period = g_table.estimate_period;
  if (period <= 0) return static_cast<int64_t>(size);
  if (size == 0) return period;
  const double bytes = static_cast<double>(size);
  return llround(bytes / -expm1(-bytes / static_cast<double>(period)));
}

// The same for a stack's `objects` samples of `bytes` in all, weighed by their mean size as pprof
// does.
int64_t StackWeight(int64_t objects, int64_t bytes) {
  if (g_table.estimate_period <= 0 || objects <= 0) return bytes;
  return objects * SampleWeight(static_cast<uint64_t>(bytes / objects));
}

int64_t PeakStep(int64_t estimate) {
  const int64_t floor =
      g_table.estimate_period > 0 ? kPeakStepPeriods * g_table.estimate_period : kExactPeakStep;
  return estimate / 8 > floor ? estimate / 8 : floor;
}

void ForgetLiveOn(uint64_t packed) {
  StackRecord* record = g_table.records[packed >> kSizeBits];
  const uint64_t size = packed & kSizeMask;
  record->live_objects -= 1;
  record->live_bytes -= static_cast<int64_t>(size);
  g_table.live_estimate -= SampleWeight(size);
}

// Caller holds the lock.
bool InsertLiveLocked(uintptr_t address, StackRecord* record, uint64_t size) {
  const uint64_t packed = (uint64_t{record->id} << kSizeBits) | (size & kSizeMask);
  const size_t existing = FindLive(address);
  if (existing != SIZE_MAX) {
    // A stale entry: the block was freed where the agent could not look (a signal handler that
    // interrupted the agent) and the address came back.
    ForgetLiveOn(g_table.live[existing].packed);
    g_table.live[existing].packed = packed;
  } else {
    if ((g_table.live_count + 1) * 2 > g_table.live_capacity && !GrowLive()) return false;
    size_t slot = LiveHome(address);
    while (g_table.live[slot].address != 0) slot = (slot + 1) & (g_table.live_capacity - 1);
    g_table.live[slot] = LiveEntry{address, packed};
    ++g_table.live_count;
    g_sample_filter[SampleFilterSlot(reinterpret_cast<const void*>(address))].fetch_add(
        1, std::memory_order_relaxed);
  }
  record->live_objects += 1;
  record->live_bytes += static_cast<int64_t>(size);
  g_table.live_estimate += SampleWeight(size & kSizeMask);
  return true;
}

// Copies the live figures of every stack into the peak snapshot and moves the trigger one step
// above the estimate. Caller holds the lock.
void TakePeakLocked() {
  const int64_t estimate = g_table.live_estimate;
  g_table.peak_trigger = estimate + PeakStep(estimate);
  if (g_table.peak_capacity < g_table.record_count) {
    const size_t capacity = g_table.record_count + g_table.record_count / 2 + 64;
    auto* rows = static_cast<PeakFigures*>(MapPages(capacity * sizeof(PeakFigures)));
    // Refused: the previous snapshot stays, and the kernel is asked again a step later.
    if (rows == nullptr) return;
    UnmapPages(g_table.peak, g_table.peak_capacity * sizeof(PeakFigures));
    g_table.peak = rows;
    g_table.peak_capacity = capacity;
  }
  size_t count = 0;
  for (size_t id = 0; id < g_table.record_count; ++id) {
    const StackRecord* record = g_table.records[id];
    if (record->live_objects <= 0) continue;
    g_table.peak[count++] = PeakFigures{record, record->live_objects, record->live_bytes};
  }
  g_table.peak_count = count;
  g_table.peak_estimate = estimate;
}

class TableLock {
 public:
  TableLock() { pthread_mutex_lock(&g_table.lock); }
  ~TableLock() { pthread_mutex_unlock(&g_table.lock); }
  TableLock(const TableLock&) = delete;
  TableLock& operator=(const TableLock&) = delete;
};

}  // namespace

bool RecordSample(const void* pointer, uint64_t size, const uintptr_t* frames, int depth) {
  TableLock lock;
  StackRecord* record = InternLocked(frames, depth);
  if (record == nullptr) return false;
  if (!InsertLiveLocked(reinterpret_cast<uintptr_t>(pointer), record, size)) return false;
  record->alloc_objects += 1;
  record->alloc_bytes += static_cast<int64_t>(size);
  if (g_table.live_estimate > g_table.peak_trigger) TakePeakLocked();
  return true;
}

bool RemoveSample(const void* pointer, LiveSample* removed) {
  TableLock lock;
  const size_t slot = FindLive(reinterpret_cast<uintptr_t>(pointer));
  if (slot == SIZE_MAX) return false;
  const uint64_t packed = g_table.live[slot].packed;
  ForgetLiveOn(packed);
  EraseLive(slot);
  g_sample_filter[SampleFilterSlot(pointer)].fetch_sub(1, std::memory_order_relaxed);
  if (removed != nullptr) {
    removed->stack_id = static_cast<uint32_t>(packed >> kSizeBits);
    removed->size = packed & kSizeMask;
  }
  return true;
}

void RestoreSample(const void* pointer, const LiveSample& sample) {
  TableLock lock;
  InsertLiveLocked(reinterpret_cast<uintptr_t>(pointer), g_table.records[sample.stack_id],
                   sample.size);
}

uint32_t InternStack(const uintptr_t* frames, int depth) {
  TableLock lock;
  StackRecord* record = InternLocked(frames, depth);
  return record == nullptr ? kNoStack : record->id;
}

const StackRecord* FindStack(uint32_t id) {
  TableLock lock;
  return id < g_table.record_count ? g_table.records[id] : nullptr;
}

bool TakeProfileFigures(LiveStacksSnapshot* live, PeakStacksSnapshot* peak) {
  for (;;) {
    size_t needed = 0;
    {
      TableLock lock;
      needed = g_table.record_count;  // bounds both copies: one row per stack at most
      if (live->capacity() >= needed && peak->capacity() >= needed) {
        live->Clear();
        peak->Clear();
        for (size_t id = 0; id < g_table.record_count; ++id) {
          const StackRecord* record = g_table.records[id];
          if (record->live_objects <= 0) continue;
          live->Append(StackFigures{record, record->live_objects, record->live_bytes,
                                    record->alloc_objects, record->alloc_bytes});
        }
        if (g_table.live_estimate > g_table.peak_estimate) {
          for (size_t i = 0; i < live->size(); ++i) {
            const StackFigures& row = (*live)[i];
            peak->Append(PeakFigures{row.record, row.live_objects, row.live_bytes});
          }
        } else {
          for (size_t i = 0; i < g_table.peak_count; ++i) peak->Append(g_table.peak[i]);
        }
        TakePeakLocked();
        return true;
      }
    }
    const size_t capacity = needed + needed / 2 + 64;
    if (live->capacity() < needed && !live->Reserve(capacity)) return false;
    if (peak->capacity() < needed && !peak->Reserve(capacity)) return false;
  }
}

void SetEstimatePeriod(int64_t period) {
  TableLock lock;
  if (period == g_table.estimate_period) return;
  g_table.estimate_period = period;
  int64_t estimate = 0;
  for (size_t slot = 0; slot < g_table.live_capacity; ++slot) {
    if (g_table.live[slot].address == 0) continue;
    estimate += SampleWeight(g_table.live[slot].packed & kSizeMask);
  }
  g_table.live_estimate = estimate;
  int64_t peak_estimate = 0;
  for (size_t i = 0; i < g_table.peak_count; ++i) {
    peak_estimate += StackWeight(g_table.peak[i].live_objects, g_table.peak[i].live_bytes);
  }
  g_table.peak_estimate = peak_estimate;
  g_table.peak_trigger = peak_estimate + PeakStep(peak_estimate);
}

int64_t LiveSampleCount() {
  TableLock lock;
  return static_cast<int64_t>(g_table.live_count);
}

void LockSampleTable() { pthread_mutex_lock(&g_table.lock); }
void UnlockSampleTable() { pthread_mutex_unlock(&g_table.lock); }

}  // namespace leakgate::agent
