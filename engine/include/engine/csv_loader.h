// Loading klines from CSV text or files.
//
// Two shapes are recognised from the header row:
//  * "Date,Open,High,Low,Close,Volume" as exported by pandas (the first header cell may be empty,
//    as in GOOG.csv); the date column is a date or date-time (see ParseTimestamp).
//  * Bitget-style rows "ts,open,high,low,close,baseVolume,quoteVolume" where ts is milliseconds;
//    a header row is optional for this shape (a first row whose first cell is an integer is data).
// Header names are matched case-insensitively; columns may appear in any order; extra columns are
// ignored. Rows are returned sorted by time; a duplicated timestamp is an error. A malformed row gets
// an error naming the source, the line (1-based) and the column, and what was expected.
// Functions are pure and thread-safe.
#ifndef LEAKGATE_ENGINE_CSV_LOADER_H_
#define LEAKGATE_ENGINE_CSV_LOADER_H_

#include <string>
#include <string_view>

#include "engine/error.h"
#include "engine/kline.h"

namespace leakgate::engine {

// `source_name` is used in error messages only (e.g. a file path).
Result<KlineSeries> ParseKlinesCsv(std::string_view text, std::string_view source_name = "<csv>");

// Reads and parses a file; a missing or unreadable file is kNotFound / kIo with the path.
Result<KlineSeries> LoadKlinesCsv(const std::string& path);

}  // namespace leakgate::engine

#endif  // LEAKGATE_ENGINE_CSV_LOADER_H_
