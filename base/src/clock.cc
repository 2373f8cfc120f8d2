#include "base/clock.h"

#include <chrono>
#include <thread>

namespace leakgate {
namespace {

class SteadyClock : public Clock {
 public:
  double NowSeconds() override {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

  void SleepFor(double seconds) override {
    if (seconds <= 0) return;
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  }
};

}  // namespace

Clock& Clock::Real() {
  static Clock* const clock = new SteadyClock();  // never destroyed: usable from static destructors
  return *clock;
}

double FakeClock::NowSeconds() {
  std::lock_guard<std::mutex> lock(mutex_);
  return now_;
}

void FakeClock::SleepFor(double seconds) {
  if (seconds > 0) Advance(seconds);
}

void FakeClock::Advance(double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  now_ += seconds;
}

}  // namespace leakgate
