#include "data/image_folder.h"

#include <stb_image.h>

#include <algorithm>
#include <cctype>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/file_bytes.h"
#include "data/resize.h"
#include "io/validate.h"

namespace st::data {

namespace {

namespace fs = std::filesystem;

bool is_image_name(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg";
}

bool is_hidden(const fs::path& p) {
  return p.filename().string().rfind('.', 0) == 0;
}

std::vector<fs::path> sorted_entries(const fs::path& dir, bool want_dirs) {
  std::vector<fs::path> out;
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
    if (is_hidden(e.path())) continue;
    if (want_dirs ? e.is_directory() : (e.is_regular_file() && is_image_name(e.path()))) {
      out.push_back(e.path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

constexpr int kMaxImageFolderClasses = 1 << 16;

std::string size_str(int h, int w) {
  return std::to_string(h) + "x" + std::to_string(w);
}

// stb_image grows its PNG buffer to each chunk's declared length before reading it: an
// 86-byte file declaring a 1.7 GB IDAT chunk made it allocate 1.7 GB (found by fuzzing).
// Every chunk must lie within the file. And the first IDAT chunk must not be empty: stb then
// copies zero bytes into its still-null data buffer (memcpy from/to null, undefined; found by
// fuzzing).
void check_png_chunks(const std::vector<uint8_t>& b, const std::string& origin) {
  static const uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (b.size() < 8 || !std::equal(kSignature, kSignature + 8, b.begin())) return;  // not PNG
  std::size_t at = 8;
  bool image_data = false;  // an IDAT chunk seen
  while (at < b.size()) {
    if (b.size() - at < 12)
      throw InputError("image " + origin + ": PNG chunk at byte " + std::to_string(at) +
                       " is cut off (truncated file)");
    const uint64_t length = (uint64_t{b[at]} << 24) | (uint64_t{b[at + 1]} << 16) |
                            (uint64_t{b[at + 2]} << 8) | b[at + 3];
    if (length > b.size() - at - 12)
      throw InputError("image " + origin + ": PNG chunk at byte " + std::to_string(at) +
                       " declares " + std::to_string(length) +
                       " bytes, past the end of the file (truncated or corrupt)");
    const bool end = std::equal(b.begin() + at + 4, b.begin() + at + 8, "IEND");
    if (std::equal(b.begin() + at + 4, b.begin() + at + 8, "IDAT")) {
      if (length == 0 && !image_data)
        throw InputError("image " + origin + ": PNG chunk at byte " + std::to_string(at) +
                         " is an empty first image-data (IDAT) chunk (corrupt file)");
      image_data = true;
    }
    at += 12 + length;
    if (end) return;
  }
}

// stb_image (the 2022 version Debian ships) builds a JPEG Huffman table from its 16 code counts
// without checking that they total at most 256, and writes past its 257-entry size table when
// they do (found by fuzzing). Every marker segment must lie within the file, and every Huffman
// table (DHT) must hold at most 256 codes and fit its segment. Entropy-coded data between
// segments is skipped as decoders do: 0xFF 0x00 is a stuffed byte, 0xFF 0xD0-0xD7 a restart.
void check_jpeg_segments(const std::vector<uint8_t>& b, const std::string& origin) {
  if (b.size() < 2 || b[0] != 0xFF || b[1] != 0xD8) return;  // not JPEG
  const auto fail = [&](std::size_t at, const std::string& what) {
    throw InputError("image " + origin + ": JPEG " + what + " at byte " + std::to_string(at) +
                     " (truncated or corrupt)");
  };
  std::size_t at = 2;
  while (at < b.size()) {
    if (b[at] != 0xFF) {  // scan data
      ++at;
      continue;
    }
    const std::size_t start = at;
    std::size_t m = at + 1;
    while (m < b.size() && b[m] == 0xFF) ++m;  // fill bytes
    if (m == b.size()) return;
    const uint8_t marker = b[m];
    at = m + 1;
    if (marker == 0xD9) return;  // end of image
    // Markers without a segment: stuffed byte, TEM, restarts, start of image.
    if (marker == 0x00 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8)) continue;
    if (b.size() - at < 2) fail(start, "segment header cut off");
    const std::size_t len = (std::size_t{b[at]} << 8) | b[at + 1];
    if (len < 2 || len > b.size() - at)
      fail(start, "segment of " + std::to_string(len) + " bytes past the end of the file");
    if (marker == 0xC4) {
      const std::size_t end = at + len;
      for (std::size_t t = at + 2; t < end;) {
        if (end - t < 17) fail(t, "Huffman table header cut off");
        std::size_t codes = 0;
        for (std::size_t i = 1; i <= 16; ++i) codes += b[t + i];
        if (codes > 256)
          fail(t, "Huffman table of " + std::to_string(codes) + " codes (at most 256)");
        if (codes > end - t - 17) fail(t, "Huffman table longer than its segment");
        t += 17 + codes;
      }
    }
    at += len;
  }
}

}  // namespace

DecodedImage decode_image_bytes(const std::vector<uint8_t>& bytes, int channels,
                                const std::string& origin, int64_t max_side) {
  if (channels != 1 && channels != 3)
    throw std::invalid_argument("image " + origin + ": channels must be 1 or 3");
  if (bytes.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()))
    throw InputError("image " + origin + ": file too large");
  // By content, not by name: PNG signature or JPEG start-of-image marker.
  const bool png = bytes.size() >= 8 && bytes[0] == 0x89 && bytes[1] == 'P' && bytes[2] == 'N' &&
                   bytes[3] == 'G';
  const bool jpeg = bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF;
  if (!png && !jpeg)
    throw InputError("image " + origin + ": cannot decode (not a PNG or JPEG file)");
  check_png_chunks(bytes, origin);
  check_jpeg_segments(bytes, origin);
  const auto* data_in = reinterpret_cast<const stbi_uc*>(bytes.data());
  const int len = static_cast<int>(bytes.size());
  int w = 0, h = 0, file_channels = 0;
  // The header first: a lying size must not reach the decoder's allocation.
  if (!stbi_info_from_memory(data_in, len, &w, &h, &file_channels)) {
    const char* reason = stbi_failure_reason();
    throw InputError("image " + origin + ": cannot decode (" + (reason ? reason : "unknown error") +
                     ")");
  }
  if (w <= 0 || h <= 0 || w > max_side || h > max_side)
    throw InputError("image " + origin + ": size " + size_str(h, w) +
                     " (HxW) exceeds the limit of " + std::to_string(max_side) + " per side");
  std::unique_ptr<stbi_uc, void (*)(void*)> data(
      stbi_load_from_memory(data_in, len, &w, &h, &file_channels, channels), stbi_image_free);
  if (!data) {
    const char* reason = stbi_failure_reason();
    throw InputError("image " + origin + ": cannot decode (" + (reason ? reason : "unknown error") +
                     ")");
  }
  if (w <= 0 || h <= 0 || w > max_side || h > max_side)
    throw InputError("image " + origin + ": decoded size " + size_str(h, w) + " is out of range");
  DecodedImage img{h, w, std::vector<uint8_t>(static_cast<std::size_t>(channels) * h * w)};
  const std::size_t plane = static_cast<std::size_t>(h) * w;
  for (std::size_t k = 0; k < plane; ++k) {
    for (int c = 0; c < channels; ++c) img.chw[c * plane + k] = data.get()[k * channels + c];
  }
  return img;
}

Dataset load_image_folder(const fs::path& root, const ImageFolderOptions& opts) {
  if (opts.channels != 1 && opts.channels != 3) {
    throw std::invalid_argument("image folder " + root.string() + ": channels " +
                                std::to_string(opts.channels) + " must be 1 or 3");
  }
  if (opts.height < 0 || opts.width < 0 || (opts.height == 0) != (opts.width == 0) ||
      (opts.resize && opts.height == 0)) {
    throw std::invalid_argument("image folder " + root.string() + ": target size " +
                                size_str(opts.height, opts.width) +
                                " must be positive (or 0x0 to take the first image's size "
                                "when not resizing)");
  }
  if (!fs::is_directory(root)) {
    throw InputError("image folder " + root.string() + " does not exist");
  }
  Dataset d;
  d.channels = opts.channels;
  d.height = opts.height;
  d.width = opts.width;
  const std::vector<fs::path> class_dirs = sorted_entries(root, true);
  if (class_dirs.empty()) {
    throw InputError("image folder " + root.string() + ": no class subfolders");
  }
  if (class_dirs.size() > static_cast<std::size_t>(kMaxImageFolderClasses)) {
    throw InputError("image folder " + root.string() + ": " + std::to_string(class_dirs.size()) +
                     " class subfolders, more than " + std::to_string(kMaxImageFolderClasses));
  }
  d.classes = static_cast<int>(class_dirs.size());
  // Every file list first: the set's size is known, and checked, before any decoding.
  std::vector<std::vector<fs::path>> files(class_dirs.size());
  uint64_t count = 0;
  for (std::size_t label = 0; label < class_dirs.size(); ++label) {
    files[label] = sorted_entries(class_dirs[label], false);
    count += files[label].size();
  }
  const std::string what = "image folder " + root.string();
  if (d.height > 0) check_dataset_size(count, d.channels, d.height, d.width, what);
  for (std::size_t label = 0; label < class_dirs.size(); ++label) {
    d.class_names.push_back(class_dirs[label].filename().string());
    for (const fs::path& file : files[label]) {
      DecodedImage img = decode_image_bytes(read_file_bytes(file), opts.channels, file.string());
      if (d.height == 0) {
        d.height = img.height;
        d.width = img.width;
        check_dataset_size(count, d.channels, d.height, d.width, what);
      }
      if (img.height != d.height || img.width != d.width) {
        if (!opts.resize) {
          throw InputError("image " + file.string() + ": size " + size_str(img.height, img.width) +
                           " (HxW) differs from the " + "required " + size_str(d.height, d.width));
        }
        img.chw =
            resize_image(img.chw.data(), opts.channels, img.height, img.width, d.height, d.width);
      }
      d.pixels.insert(d.pixels.end(), img.chw.begin(), img.chw.end());
      d.labels.push_back(static_cast<int32_t>(label));
    }
  }
  if (d.size() == 0) {
    throw InputError("image folder " + root.string() + ": no .png/.jpg/.jpeg images");
  }
  d.description = "image folder " + root.string();
  d.validate();
  return d;
}

}  // namespace st::data
