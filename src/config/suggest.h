// "Did you mean" suggestions for misspelled keys and choices.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace st {

// Edit distance (insertions, deletions, substitutions), exact and case-sensitive.
size_t levenshtein(const std::string& a, const std::string& b);

// The candidate closest to `word` when it is close enough to be a likely typo; compares
// case-insensitively and treats '-' and '_' alike. Empty when nothing is close.
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

// `"a", "b", "c"`: for listing valid keys or choices in a message.
std::string quoted_list(const std::vector<std::string>& items);

}  // namespace st
