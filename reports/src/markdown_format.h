// Markdown text pieces shared by the single-gate report and the before/after comparison (internal
// to leakgate::reports): a table cell that cannot break its table, a code span that keeps its
// characters literal, and the mark of a verdict. Pure functions; thread-safe.
#ifndef LEAKGATE_REPORTS_SRC_MARKDOWN_FORMAT_H_
#define LEAKGATE_REPORTS_SRC_MARKDOWN_FORMAT_H_

#include <string>
#include <string_view>

namespace leakgate::reports {

// Text for one Markdown line or table cell: no pipe, line break or '<' (read as HTML) escapes it.
inline std::string Cell(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '|') {
      out += "\\|";
    } else if (c == '<') {
      out += "&lt;";
    } else if (c == '\n' || c == '\r') {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

// `text` as a code span that is safe in a table cell: '<', '*' and '_' stay literal (a C++ site
// such as "std::vector<int>::_M_realloc_insert" reads as written), '|' is escaped for the table
// (GitHub-flavoured Markdown splits cells before it reads code spans), a line break becomes a space,
// and a backtick in the text gets a longer fence.
inline std::string CodeCell(std::string_view text) {
  std::string body;
  for (char c : text) {
    if (c == '|') {
      body += "\\|";
    } else if (c == '\n' || c == '\r') {
      body += ' ';
    } else {
      body += c;
    }
  }
  if (body.find('`') == std::string::npos) return "`" + body + "`";
  return "`` " + body + " ``";
}

// ✅ pass, ❌ fail, ⚠️ anything else (inconclusive, error).
inline std::string_view Mark(std::string_view verdict) {
  if (verdict == "pass") return "✅";
  if (verdict == "fail") return "❌";
  return "⚠️";
}

}  // namespace leakgate::reports

#endif  // LEAKGATE_REPORTS_SRC_MARKDOWN_FORMAT_H_
