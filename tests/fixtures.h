// Locates the committed reference fixtures (tests/fixtures, written by
// scripts/make_fixtures.py) and loads them.
#pragma once

#include <string>

#include "io/safetensors.h"

#ifndef SPARSETRAIN_FIXTURES_DIR
#error "the test binary must be compiled with SPARSETRAIN_FIXTURES_DIR"
#endif

namespace st::test {

inline std::string fixture_path(const std::string& file) {
  return std::string(SPARSETRAIN_FIXTURES_DIR) + "/" + file;
}

inline SafetensorsReader load_fixture(const std::string& file) {
  return SafetensorsReader::load(fixture_path(file));
}

}  // namespace st::test
