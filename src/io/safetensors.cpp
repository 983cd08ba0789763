#include "io/safetensors.h"

#include "io/file_write.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <type_traits>

namespace st {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; this reader assumes a little-endian host");

namespace {

using json = nlohmann::json;

struct DTypeInfo {
  const char* name;
  std::size_t size;
};

constexpr DTypeInfo kDTypes[] = {{"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8},
                                 {"I32", 4}, {"I16", 2}, {"I8", 1},  {"U8", 1},   {"BOOL", 1}};

const DTypeInfo* find_dtype(const std::string& name) {
  for (const DTypeInfo& d : kDTypes)
    if (name == d.name) return &d;
  return nullptr;
}

std::string supported_dtypes() {
  std::string s;
  for (const DTypeInfo& d : kDTypes) s += (s.empty() ? "" : ", ") + std::string(d.name);
  return s;
}

template <typename T>
T load_le(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Bounded depth and no repeated key (the JSON library would silently keep the last one,
// so two tensors of one name could hide each other).
json parse_header_json(const char* begin, const char* end, const std::string& origin) {
  json header;
  try {
    header = parse_json_checked(std::string_view(begin, static_cast<std::size_t>(end - begin)),
                                origin + ": header");
  } catch (const InputError& e) {
    throw SafetensorsError(e.what());
  }
  if (!header.is_object()) throw SafetensorsError(origin + ": header is not a JSON object");
  return header;
}

std::map<std::string, std::string> parse_metadata(const json& m, const std::string& origin) {
  if (!m.is_object()) throw SafetensorsError(origin + ": __metadata__ is not a JSON object");
  std::map<std::string, std::string> out;
  for (auto it = m.begin(); it != m.end(); ++it) {
    if (!it.value().is_string())
      throw SafetensorsError(origin + ": __metadata__ entry '" + it.key() + "' is not a string");
    out[it.key()] = it.value().get<std::string>();
  }
  return out;
}

uint64_t checked_mul_shape(uint64_t a, uint64_t b, const std::string& where) {
  uint64_t r;
  if (__builtin_mul_overflow(a, b, &r)) throw SafetensorsError(where + ": shape is too large");
  return r;
}

SafetensorsEntry parse_entry(const std::string& name, const json& v, const std::string& where) {
  if (!v.is_object()) throw SafetensorsError(where + ": entry is not a JSON object");
  for (auto it = v.begin(); it != v.end(); ++it)
    if (it.key() != "dtype" && it.key() != "shape" && it.key() != "data_offsets")
      throw SafetensorsError(where + ": unexpected field '" + it.key() + "'");
  if (!v.contains("dtype") || !v["dtype"].is_string())
    throw SafetensorsError(where + ": missing or non-string 'dtype'");
  if (!v.contains("shape") || !v["shape"].is_array())
    throw SafetensorsError(where + ": missing or non-array 'shape'");
  if (!v.contains("data_offsets") || !v["data_offsets"].is_array() ||
      v["data_offsets"].size() != 2 || !v["data_offsets"][0].is_number_unsigned() ||
      !v["data_offsets"][1].is_number_unsigned())
    throw SafetensorsError(where + ": 'data_offsets' must be two non-negative integers");

  SafetensorsEntry e;
  e.name = name;
  e.dtype = v["dtype"].get<std::string>();
  const DTypeInfo* info = find_dtype(e.dtype);
  if (!info)
    throw SafetensorsError(where + ": dtype '" + e.dtype +
                           "' is not supported (supported: " + supported_dtypes() + ")");
  uint64_t bytes = info->size;
  uint64_t nonzero = 1;  // a zero dimension must not hide an overflowing product of the others
  if (v["shape"].size() > kMaxTensorDims)
    throw SafetensorsError(where + ": shape has " + std::to_string(v["shape"].size()) +
                           " dimensions, more than " + std::to_string(kMaxTensorDims));
  for (const json& d : v["shape"]) {
    if (!d.is_number_unsigned())
      throw SafetensorsError(where + ": shape entries must be non-negative integers, got " +
                             v["shape"].dump());
    const uint64_t dim = d.get<uint64_t>();
    if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      throw SafetensorsError(where + ": shape is too large");
    e.shape.push_back(static_cast<int64_t>(dim));
    bytes = checked_mul_shape(bytes, dim, where);
    if (dim != 0) nonzero = checked_mul_shape(nonzero, dim, where);
  }
  e.begin = v["data_offsets"][0].get<uint64_t>();
  e.end = v["data_offsets"][1].get<uint64_t>();
  if (e.begin > e.end)
    throw SafetensorsError(where + ": data_offsets [" + std::to_string(e.begin) + ", " +
                           std::to_string(e.end) + "] begin after end");
  if (e.end - e.begin != bytes)
    throw SafetensorsError(where + ": data_offsets [" + std::to_string(e.begin) + ", " +
                           std::to_string(e.end) + "] hold " + std::to_string(e.end - e.begin) +
                           " bytes but " + e.dtype + " " + shape_str(e.shape) + " needs " +
                           std::to_string(bytes));
  return e;
}

// The byte ranges, in order, must cover the data section exactly once.
void check_tiling(const std::vector<SafetensorsEntry>& sorted, uint64_t data_bytes,
                  const std::string& origin) {
  uint64_t next = 0;
  for (const SafetensorsEntry& e : sorted) {
    if (e.begin != next) {
      const char* what =
          e.begin > next ? "leaves a gap before it" : "overlaps the tensor before it";
      throw SafetensorsError(origin + ": tensor '" + e.name + "': data_offsets [" +
                             std::to_string(e.begin) + ", " + std::to_string(e.end) + "] " + what +
                             " (expected to start at byte " + std::to_string(next) + ")");
    }
    next = e.end;
  }
  if (next != data_bytes) {
    const std::string last = sorted.empty() ? "" : "after tensor '" + sorted.back().name + "' ";
    throw SafetensorsError(origin + ": the tensors " + last + "end at byte " +
                           std::to_string(next) + " of the data section but it holds " +
                           std::to_string(data_bytes) + " bytes" +
                           (next > data_bytes ? " (file truncated?)" : " (trailing bytes)"));
  }
}

template <typename To>
void decode_into(const SafetensorsEntry& e, const uint8_t* src, To* dst, const std::string& where) {
  const std::size_t n = static_cast<std::size_t>(shape_numel(e.shape));
  const std::string& t = e.dtype;
  for (std::size_t i = 0; i < n; ++i) {
    double v = 0;
    if (t == "F64")
      v = load_le<double>(src + 8 * i);
    else if (t == "F32")
      v = load_le<float>(src + 4 * i);
    else if (t == "F16")
      v = half_to_float(load_le<uint16_t>(src + 2 * i));
    else if (t == "BF16")
      v = bfloat16_to_float(load_le<uint16_t>(src + 2 * i));
    else if (t == "I64") {
      const int64_t x = load_le<int64_t>(src + 8 * i);
      if constexpr (std::is_same_v<To, int32_t>) {
        if (x < std::numeric_limits<int32_t>::min() || x > std::numeric_limits<int32_t>::max())
          throw SafetensorsError(where + ": I64 value " + std::to_string(x) + " at index " +
                                 std::to_string(i) + " does not fit in I32");
        dst[i] = static_cast<int32_t>(x);
        continue;
      }
      v = static_cast<double>(x);
    } else if (t == "I32")
      v = load_le<int32_t>(src + 4 * i);
    else if (t == "I16")
      v = load_le<int16_t>(src + 2 * i);
    else if (t == "I8")
      v = static_cast<int8_t>(src[i]);
    else if (t == "U8")
      v = src[i];
    else if (t == "BOOL")
      v = src[i] != 0 ? 1 : 0;
    dst[i] = static_cast<To>(v);
  }
}

const char* stored_dtype(DType t) {
  switch (t) {
    case DType::F32:
      return "F32";
    case DType::F64:
      return "F64";
    case DType::I32:
      return "I32";
  }
  return "?";
}

std::vector<int64_t> as_int64_values(const std::string& name, const Tensor& host) {
  const std::vector<double> v = host.to_vector_f64();
  std::vector<int64_t> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!std::isfinite(v[i]) || v[i] != std::floor(v[i]) || std::fabs(v[i]) > 9.0e18)
      throw SafetensorsError("safetensors: tensor '" + name +
                             "' is to be stored as I64 but value " + std::to_string(v[i]) +
                             " at index " + std::to_string(i) + " is not an integer");
    out[i] = static_cast<int64_t>(v[i]);
  }
  return out;
}

}  // namespace

float half_to_float(uint16_t bits) {
  const uint32_t sign = (bits >> 15) & 1u;
  const uint32_t exp = (bits >> 10) & 0x1Fu;
  const uint32_t mant = bits & 0x3FFu;
  float magnitude;
  if (exp == 0) {
    magnitude = std::ldexp(static_cast<float>(mant), -24);  // zero and subnormals
  } else if (exp == 31) {
    magnitude =
        mant ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  } else {
    magnitude = std::ldexp(static_cast<float>(mant | 0x400u), static_cast<int>(exp) - 25);
  }
  return sign ? -magnitude : magnitude;
}

float bfloat16_to_float(uint16_t bits) {
  return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16);
}

SafetensorsReader SafetensorsReader::load(const std::string& path) {
  // A directory or device opens as a stream too, with a meaningless size: refuse it first.
  std::error_code ec;
  const std::filesystem::file_status status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status))
    throw SafetensorsError(path + ": cannot open for reading (no such file)");
  if (!std::filesystem::is_regular_file(status))
    throw SafetensorsError(path + ": not a regular file (a directory?)");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw SafetensorsError(path + ": cannot open for reading");
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  in.seekg(0, std::ios::beg);
  if (size < 0) throw std::runtime_error(path + ": cannot determine the file size");
  std::vector<uint8_t> bytes(static_cast<std::size_t>(size));
  if (size > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), size))
    throw std::runtime_error(path + ": read failed");
  return parse(std::move(bytes), path);
}

SafetensorsReader SafetensorsReader::parse(std::vector<uint8_t> bytes, const std::string& origin) {
  SafetensorsReader r;
  r.origin_ = origin;
  r.bytes_ = std::move(bytes);
  const uint64_t file_size = r.bytes_.size();
  if (file_size < 8)
    throw SafetensorsError(origin + ": " + std::to_string(file_size) +
                           " bytes is too short for a safetensors file (truncated?)");
  const uint64_t n = load_le<uint64_t>(r.bytes_.data());
  if (n > kSafetensorsMaxHeader)
    throw SafetensorsError(origin + ": header length " + std::to_string(n) +
                           " exceeds the limit of " + std::to_string(kSafetensorsMaxHeader));
  if (n > file_size - 8)
    throw SafetensorsError(origin + ": header length " + std::to_string(n) +
                           " runs past the end of the " + std::to_string(file_size) +
                           "-byte file (truncated?)");
  const char* hdr = reinterpret_cast<const char*>(r.bytes_.data() + 8);
  if (n == 0 || hdr[0] != '{') throw SafetensorsError(origin + ": header does not start with '{'");
  const json header = parse_header_json(hdr, hdr + n, origin);
  r.data_start_ = 8 + n;

  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      r.metadata_ = parse_metadata(it.value(), origin);
      continue;
    }
    r.entries_.push_back(parse_entry(it.key(), it.value(), r.where(it.key())));
  }
  std::sort(r.entries_.begin(), r.entries_.end(),
            [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
              return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
            });
  check_tiling(r.entries_, file_size - r.data_start_, origin);
  for (std::size_t i = 0; i < r.entries_.size(); ++i) r.index_[r.entries_[i].name] = i;
  return r;
}

std::string SafetensorsReader::where(const std::string& name) const {
  return origin_ + ": tensor '" + name + "'";
}

std::vector<std::string> SafetensorsReader::names() const {
  std::vector<std::string> out;
  for (const SafetensorsEntry& e : entries_) out.push_back(e.name);
  return out;
}

const SafetensorsEntry& SafetensorsReader::entry(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw SafetensorsError(where(name) + ": not in the file");
  return entries_[it->second];
}

const uint8_t* SafetensorsReader::data_of(const SafetensorsEntry& e) const {
  return bytes_.data() + data_start_ + e.begin;
}

Tensor SafetensorsReader::get(const std::string& name) const {
  const SafetensorsEntry& e = entry(name);
  if (e.dtype == "F64") return get_f64(name);
  if (e.dtype == "F32" || e.dtype == "F16" || e.dtype == "BF16") return get_f32(name);
  Tensor t(e.shape, DType::I32);
  decode_into(e, data_of(e), t.data<int32_t>(), where(name));
  return t;
}

Tensor SafetensorsReader::get_f32(const std::string& name) const {
  const SafetensorsEntry& e = entry(name);
  Tensor t(e.shape, DType::F32);
  decode_into(e, data_of(e), t.data<float>(), where(name));
  return t;
}

Tensor SafetensorsReader::get_f64(const std::string& name) const {
  const SafetensorsEntry& e = entry(name);
  Tensor t(e.shape, DType::F64);
  decode_into(e, data_of(e), t.data<double>(), where(name));
  return t;
}

std::vector<uint8_t> serialize_safetensors(
    const std::vector<std::pair<std::string, Tensor>>& tensors,
    const std::map<std::string, std::string>& metadata, const std::set<std::string>& as_int64) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<std::vector<uint8_t>> blobs;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name == "__metadata__" || header.contains(name))
      throw SafetensorsError("safetensors: tensor name '" + name + "' is reserved or repeated");
    if (!tensor.defined())
      throw SafetensorsError("safetensors: tensor '" + name + "' is undefined");
    const Tensor host = tensor.device() == Device::CPU ? tensor : tensor.to(Device::CPU);
    std::vector<uint8_t> blob;
    std::string dtype = stored_dtype(host.dtype());
    if (as_int64.count(name)) {
      const std::vector<int64_t> v = as_int64_values(name, host);
      blob.resize(v.size() * sizeof(int64_t));
      if (!v.empty()) std::memcpy(blob.data(), v.data(), blob.size());
      dtype = "I64";
    } else {
      blob.resize(host.bytes());
      if (!blob.empty()) std::memcpy(blob.data(), host.raw(), blob.size());
    }
    header[name] = {{"dtype", dtype},
                    {"shape", host.shape()},
                    {"data_offsets", {offset, offset + blob.size()}}};
    offset += blob.size();
    blobs.push_back(std::move(blob));
  }
  for (const std::string& name : as_int64)
    if (!header.contains(name))
      throw SafetensorsError("safetensors: as_int64 names '" + name + "', which is not written");

  std::string text;
  try {
    text = header.dump(-1, ' ', false, json::error_handler_t::strict);
  } catch (const json::exception& e) {
    throw SafetensorsError(std::string("safetensors: header is not valid UTF-8: ") + e.what());
  }
  // Spaces pad the header so that the data section starts 8-byte aligned.
  text.append((8 - text.size() % 8) % 8, ' ');
  // Never write what SafetensorsReader::parse would refuse.
  if (text.size() > kSafetensorsMaxHeader)
    throw SafetensorsError("safetensors: the header would take " + std::to_string(text.size()) +
                           " bytes, more than the reader's limit of " +
                           std::to_string(kSafetensorsMaxHeader) +
                           " (is a metadata string, e.g. a description, huge?)");
  if (json_nested_deeper_than(header))
    throw SafetensorsError("safetensors: the header nests deeper than " +
                           std::to_string(kMaxJsonDepth) + " levels");
  std::vector<uint8_t> out(8 + text.size() + offset);
  const uint64_t n = text.size();
  std::memcpy(out.data(), &n, 8);
  std::memcpy(out.data() + 8, text.data(), text.size());
  uint8_t* p = out.data() + 8 + text.size();
  for (const std::vector<uint8_t>& b : blobs) {
    if (!b.empty()) std::memcpy(p, b.data(), b.size());
    p += b.size();
  }
  return out;
}

void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata,
                       const std::set<std::string>& as_int64) {
  const std::vector<uint8_t> image = serialize_safetensors(tensors, metadata, as_int64);
  write_file_atomic(path,
                    std::string_view(reinterpret_cast<const char*>(image.data()), image.size()));
}

}  // namespace st
