#include "engine/faults.h"

#include <string>

namespace leakgate::engine {
namespace {

std::string KnownFaultList() {
  std::string out = "none, all";
  for (Fault fault : kAllFaults) {
    out += ", ";
    out += FaultName(fault);
  }
  return out;
}

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

}  // namespace

std::string_view FaultName(Fault fault) {
  switch (fault) {
    case Fault::kSingleton:
      return "singleton";
    case Fault::kNoCleanup:
      return "no-cleanup";
    case Fault::kUnbatchedKlines:
      return "unbatched-klines";
    case Fault::kUnclosedConnection:
      return "unclosed-connection";
    case Fault::kLoopRetain:
      return "loop-retain";
  }
  return "unknown";
}

Result<Fault> ParseFault(std::string_view name) {
  for (Fault fault : kAllFaults) {
    if (FaultName(fault) == name) return fault;
  }
  return Fail(ErrorCode::kInvalidArgument,
              "unknown fault '" + std::string(name) + "'; known: " + KnownFaultList());
}

FaultSet FaultSet::All() {
  FaultSet set;
  for (Fault fault : kAllFaults) set.Add(fault);
  return set;
}

Result<FaultSet> FaultSet::Parse(std::string_view text) {
  const std::string_view whole = Trim(text);
  if (whole == "none") return FaultSet();
  if (whole == "all") return All();
  if (whole.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "the fault list is empty; pass one of " +
                                                 KnownFaultList() +
                                                 ", or several names separated by commas");
  }
  FaultSet set;
  size_t begin = 0;
  while (begin <= whole.size()) {
    size_t comma = whole.find(',', begin);
    if (comma == std::string_view::npos) comma = whole.size();
    const std::string_view item = Trim(whole.substr(begin, comma - begin));
    if (item.empty()) {
      return Fail(ErrorCode::kInvalidArgument,
                  "the fault list '" + std::string(whole) +
                      "' has an empty item; separate fault names by single commas, e.g. "
                      "singleton,loop-retain");
    }
    Result<Fault> fault = ParseFault(item);
    if (!fault) {
      return Fail(ErrorCode::kInvalidArgument,
                  "the fault list '" + std::string(whole) + "' names " + fault.error().message);
    }
    set.Add(*fault);
    begin = comma + 1;
  }
  return set;
}

std::string FaultSet::ToString() const {
  if (empty()) return "none";
  if (*this == All()) return "all";
  std::string out;
  for (Fault fault : kAllFaults) {
    if (!Has(fault)) continue;
    if (!out.empty()) out += ',';
    out += FaultName(fault);
  }
  return out;
}

}  // namespace leakgate::engine
