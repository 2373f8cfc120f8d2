// Time for the harness, behind an interface so that the runner and the sampler can run on a fake
// clock in tests (in the manner of abseil's Clock / SimulatedClock).
//
// `Clock::Real()` is the process-wide monotonic clock (thread-safe). `FakeClock` only moves when told:
// `Advance` moves it, and `SleepFor` advances it by the requested duration at once instead of waiting;
// it is thread-safe.
#ifndef LEAKGATE_BASE_CLOCK_H_
#define LEAKGATE_BASE_CLOCK_H_

#include <chrono>
#include <mutex>

namespace leakgate {

class Clock {
 public:
  virtual ~Clock() = default;
  // Seconds on a monotonic scale (the origin is arbitrary but fixed for the clock's life).
  virtual double NowSeconds() = 0;
  // Blocks (or, for a fake, advances) for `seconds`; non-positive returns at once.
  virtual void SleepFor(double seconds) = 0;

  // The real monotonic clock; never destroyed.
  static Clock& Real();
};

class FakeClock : public Clock {
 public:
  explicit FakeClock(double start_seconds = 1000.0) : now_(start_seconds) {}
  double NowSeconds() override;
  void SleepFor(double seconds) override;  // advances the clock by `seconds`
  void Advance(double seconds);

 private:
  std::mutex mutex_;
  double now_;
};

}  // namespace leakgate

#endif  // LEAKGATE_BASE_CLOCK_H_
