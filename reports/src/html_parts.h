// Shared pieces of the HTML pages (internal to leakgate::reports).
#ifndef LEAKGATE_REPORTS_SRC_HTML_PARTS_H_
#define LEAKGATE_REPORTS_SRC_HTML_PARTS_H_
#endif  // LEAKGATE_REPORTS_SRC_HTML_PARTS_H_
