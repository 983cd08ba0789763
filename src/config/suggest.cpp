#include "config/suggest.h"

#include <algorithm>
#include <cctype>

namespace st {

size_t levenshtein(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      size_t substitute = diagonal + (a[i - 1] == b[j - 1] ? 0 : 1);
      row[j] = std::min({above + 1, row[j - 1] + 1, substitute});
      diagonal = above;
    }
  }
  return row[b.size()];
}

namespace {

std::string normalized(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    out += c == '-' ? '_' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

// Short words allow one edit; longer ones about a third of their length.
size_t max_typo_distance(size_t length) {
  return length <= 3 ? 1 : std::max<size_t>(2, length / 3);
}

}  // namespace

std::string closest_match(const std::string& word, const std::vector<std::string>& candidates) {
  const std::string w = normalized(word);
  std::string best;
  size_t best_distance = max_typo_distance(w.size()) + 1;
  for (const std::string& candidate : candidates) {
    size_t d = levenshtein(w, normalized(candidate));
    if (d < best_distance) {
      best_distance = d;
      best = candidate;
    }
  }
  if (!best.empty()) return best;
  // A truncated key ("warmup" for "warmup_epochs") is far in edits but obvious to a reader.
  for (const std::string& candidate : candidates) {
    std::string c = normalized(candidate);
    if (w.size() >= 3 && c.rfind(w, 0) == 0) return candidate;
  }
  return "";
}

std::string quoted_list(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ", ";
    out += "\"" + items[i] + "\"";
  }
  return out;
}

}  // namespace st
