#include "data/image_folder.h"

#include <stb_image.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/resize.h"

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

struct DecodedImage {
  int height = 0, width = 0;
  std::vector<uint8_t> chw;
};

DecodedImage decode_image(const fs::path& path, int channels) {
  int w = 0, h = 0, file_channels = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> data(
      stbi_load(path.string().c_str(), &w, &h, &file_channels, channels), stbi_image_free);
  if (!data) {
    const char* reason = stbi_failure_reason();
    throw std::runtime_error("image " + path.string() + ": cannot decode (" +
                             (reason ? reason : "unknown error") + ")");
  }
  DecodedImage img{h, w, std::vector<uint8_t>(static_cast<std::size_t>(channels) * h * w)};
  const std::size_t plane = static_cast<std::size_t>(h) * w;
  for (std::size_t k = 0; k < plane; ++k) {
    for (int c = 0; c < channels; ++c) img.chw[c * plane + k] = data.get()[k * channels + c];
  }
  return img;
}

std::string size_str(int h, int w) {
  return std::to_string(h) + "x" + std::to_string(w);
}

}  // namespace

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
    throw std::runtime_error("image folder " + root.string() + " does not exist");
  }
  Dataset d;
  d.channels = opts.channels;
  d.height = opts.height;
  d.width = opts.width;
  const std::vector<fs::path> class_dirs = sorted_entries(root, true);
  if (class_dirs.empty()) {
    throw std::runtime_error("image folder " + root.string() + ": no class subfolders");
  }
  d.classes = static_cast<int>(class_dirs.size());
  for (std::size_t label = 0; label < class_dirs.size(); ++label) {
    d.class_names.push_back(class_dirs[label].filename().string());
    for (const fs::path& file : sorted_entries(class_dirs[label], false)) {
      DecodedImage img = decode_image(file, opts.channels);
      if (d.height == 0) {
        d.height = img.height;
        d.width = img.width;
      }
      if (img.height != d.height || img.width != d.width) {
        if (!opts.resize) {
          throw std::runtime_error("image " + file.string() + ": size " +
                                   size_str(img.height, img.width) + " (HxW) differs from the " +
                                   "required " + size_str(d.height, d.width));
        }
        img.chw =
            resize_image(img.chw.data(), opts.channels, img.height, img.width, d.height, d.width);
      }
      d.pixels.insert(d.pixels.end(), img.chw.begin(), img.chw.end());
      d.labels.push_back(static_cast<int32_t>(label));
    }
  }
  if (d.size() == 0) {
    throw std::runtime_error("image folder " + root.string() + ": no .png/.jpg/.jpeg images");
  }
  d.description = "image folder " + root.string();
  d.validate();
  return d;
}

}  // namespace st::data
