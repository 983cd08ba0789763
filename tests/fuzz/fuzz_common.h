// Shared by the libFuzzer harnesses: a reader may refuse its input with the exception types
// of its contract (InputError and the other std::runtime_error / std::invalid_argument
// messages); anything else (a crash, a sanitizer report, std::bad_alloc, a raw library
// exception, a hang) is a finding.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <new>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <vector>

namespace st::fuzz {

template <typename F>
void expect_clean(F&& f) {
  try {
    f();
  } catch (const std::bad_alloc&) {
    std::abort();  // sizes must be checked before allocation
  } catch (const nlohmann::json::exception&) {
    std::abort();  // raw library text must not reach the user
  } catch (const std::runtime_error&) {
  } catch (const std::invalid_argument&) {
  } catch (const std::out_of_range&) {
    std::abort();  // an unchecked .at() or index
  }
}

inline std::vector<uint8_t> bytes_of(const uint8_t* data, size_t size) {
  return std::vector<uint8_t>(data, data + size);
}

}  // namespace st::fuzz
