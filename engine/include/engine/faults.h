// The seeded defects of the reference backtest service, switchable from its command line.
//
// Each `Fault` reproduces one root cause of the backtest CPU-leak incident: `singleton` (components
// built once for the server, keeping every session's data), `no-cleanup` (a task without a cleanup
// path), `unbatched-klines` (klines turned into row objects and written in one go),
// `unclosed-connection` (the exchange adapter never disconnected) and `loop-retain` (each
// per-window strategy and its window holding each other). A `FaultSet` is a plain value naming
// which of them are on; the service reads it once, at start, to choose its components. Everything
// here is thread-safe (values and pure functions).
#ifndef LEAKGATE_ENGINE_FAULTS_H_
#define LEAKGATE_ENGINE_FAULTS_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "engine/error.h"

namespace leakgate::engine {

enum class Fault : uint8_t {
  kSingleton,
  kNoCleanup,
  kUnbatchedKlines,
  kUnclosedConnection,
  kLoopRetain
};

inline constexpr std::array<Fault, 5> kAllFaults = {Fault::kSingleton, Fault::kNoCleanup,
                                                    Fault::kUnbatchedKlines,
                                                    Fault::kUnclosedConnection, Fault::kLoopRetain};

// "singleton", "no-cleanup", "unbatched-klines", "unclosed-connection", "loop-retain".
std::string_view FaultName(Fault fault);

// The inverse of FaultName; an unknown name is kInvalidArgument listing the known ones.
Result<Fault> ParseFault(std::string_view name);

class FaultSet {
 public:
  FaultSet() = default;  // no fault
  static FaultSet All();

  // "none", "all", or a comma-separated list of fault names (spaces around names are ignored, a
  // name may repeat). Errors (kInvalidArgument): an empty text or item, or an unknown name; the
  // message quotes the item and lists "none", "all" and the known names.
  static Result<FaultSet> Parse(std::string_view text);

  bool Has(Fault fault) const { return (bits_ & Bit(fault)) != 0; }
  bool empty() const { return bits_ == 0; }
  FaultSet& Add(Fault fault) {
    bits_ |= Bit(fault);
    return *this;
  }

  // "none", "all", or the names in the order of kAllFaults joined by ','; Parse(ToString()) gives
  // back the same set.
  std::string ToString() const;

  friend bool operator==(const FaultSet&, const FaultSet&) = default;

 private:
  static constexpr uint8_t Bit(Fault fault) { return uint8_t{1} << static_cast<uint8_t>(fault); }
  uint8_t bits_ = 0;
};

}  // namespace leakgate::engine

#endif  // LEAKGATE_ENGINE_FAULTS_H_
