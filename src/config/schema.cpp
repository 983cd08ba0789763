// The section tables of the experiment config. A key's order in its table is the order it is
// read in, so a field may depend on the fields above it (data.augmentation.normalize on the
// channels of data.synthetic, output.dir on output.name).
#include "config/schema.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <limits>
#include <set>
#include <type_traits>

#include "nn/layer_spec.h"

namespace st {

namespace {

using nlohmann::json;
using Keys = std::vector<std::string>;

constexpr int64_t kMaxInt = std::numeric_limits<int>::max();
constexpr int64_t kMaxInt64 = std::numeric_limits<int64_t>::max();
// Generated data larger than this is refused before anything is allocated.
constexpr double kMaxSyntheticBytes = 64.0 * (1ull << 30);
// A description is a note, not a payload: it is stored in every checkpoint's header.
constexpr size_t kMaxDescriptionBytes = 64 * 1024;

template <class S>
using Fallback = std::function<std::optional<json>(const S&, const SchemaContext&)>;
template <class S>
using Pred = std::function<bool(const S&)>;

template <class S>
Fallback<S> constant(json v) {
  return [v](const S&, const SchemaContext&) { return std::optional<json>(v); };
}
template <class S>
Fallback<S> required() {
  return [](const S&, const SchemaContext&) { return std::optional<json>(); };
}

template <class T>
std::optional<T> as(const std::optional<json>& j) {
  if (!j) return std::nullopt;
  return j->get<T>();
}

// ---- field builders ---------------------------------------------------------------------------
// `at` is a generic lambda giving the member a key maps to: [](auto& s) -> auto& { return s.x; }.

template <class S, class At>
Field<S> number(std::string key, At at, NumberRange range, Fallback<S> def) {
  Field<S> f;
  f.key = key;
  f.fallback = def;
  f.read = [key, at, range, def](const JsonReader& r, S& s, const SchemaContext& c) {
    at(s) = r.number(key, range, as<double>(def(s, c)));
  };
  f.write = [at](const S& s, const SchemaContext&) { return json(at(s)); };
  return f;
}

template <class S, class At>
Field<S> integer(std::string key, At at, int64_t lo, int64_t hi, Fallback<S> def) {
  Field<S> f;
  f.key = key;
  f.fallback = def;
  f.read = [key, at, lo, hi, def](const JsonReader& r, S& s, const SchemaContext& c) {
    using T = std::remove_reference_t<decltype(at(s))>;
    at(s) = static_cast<T>(r.integer(key, lo, hi, as<int64_t>(def(s, c))));
  };
  f.write = [at](const S& s, const SchemaContext&) { return json(at(s)); };
  return f;
}

template <class S, class At>
Field<S> boolean(std::string key, At at, bool def) {
  Field<S> f;
  f.key = key;
  f.fallback = constant<S>(def);
  f.read = [key, at, def](const JsonReader& r, S& s, const SchemaContext&) {
    at(s) = r.boolean(key, def);
  };
  f.write = [at](const S& s, const SchemaContext&) { return json(at(s)); };
  return f;
}

template <class S, class E, class At>
Field<S> choice(std::string key, At at, const NameTable<E>& (*table)(), Fallback<S> def) {
  Field<S> f;
  f.key = key;
  f.fallback = def;
  f.read = [key, at, table, def](const JsonReader& r, S& s, const SchemaContext& c) {
    at(s) = table_value(table(), r.choice(key, table_names(table()), as<std::string>(def(s, c))));
  };
  f.write = [at, table](const S& s, const SchemaContext&) {
    return json(table_name(table(), at(s)));
  };
  return f;
}

template <class S, class C, class At>
Field<S> section(std::string key, At at, const Schema<C>& (*schema)()) {
  Field<S> f;
  f.key = key;
  f.read = [key, at, schema](const JsonReader& r, S& s, const SchemaContext& c) {
    read_section(schema(), r.child(key), at(s), c);
  };
  f.write = [at, schema](const S& s, const SchemaContext& c) {
    return write_section(schema(), at(s), c);
  };
  f.list_children = [schema](const std::string& path, std::vector<SchemaKey>& out) {
    list_section(schema(), path, C{}, out);
  };
  return f;
}

template <class S>
Field<S> custom(std::string key, Fallback<S> def,
                std::function<void(const JsonReader&, S&, const SchemaContext&)> read,
                std::function<json(const S&)> write) {
  Field<S> f;
  f.key = key;
  f.fallback = def;
  f.read = std::move(read);
  f.write = [write](const S& s, const SchemaContext&) { return write(s); };
  return f;
}

template <class S>
Field<S> when(Field<S> f, Pred<S> applies) {
  f.applies = std::move(applies);
  return f;
}
template <class S>
Field<S> discriminator(Field<S> f) {
  f.discriminator = true;
  return f;
}
// A key that does not change what training computes (left out of the fingerprint).
template <class S>
Field<S> untracked(Field<S> f) {
  f.fingerprint = [](const ExperimentConfig&) { return false; };
  return f;
}

// A key added after runs were made: in the fingerprint (and the resume check) only where it
// changes training, so that runs made before it keep their fingerprint and still resume.
template <class S>
Field<S> tracked_when(Field<S> f, std::function<bool(const ExperimentConfig&)> changes_training) {
  f.fingerprint = std::move(changes_training);
  return f;
}

// ---- data -------------------------------------------------------------------------------------

std::string default_data_path(DataKind kind) {
  switch (kind) {
    case DataKind::FashionMnist:
      return "/usr/share/datasets/fashion-mnist";
    case DataKind::Mnist:
      return "data/mnist";
    case DataKind::Cifar10:
      return "data/cifar-10-batches-bin";
    case DataKind::Cifar100:
      return "data/cifar-100-binary";
    case DataKind::ImageFolder:
    case DataKind::Synthetic:
      return "";
  }
  return "";
}

json normalize_json(const NormalizeConfig& n) {
  if (n.mode == NormalizeMode::None) return "none";
  if (n.mode == NormalizeMode::Computed) return "computed";
  return {{"mean", n.mean}, {"std", n.std}};
}

NormalizeConfig read_normalize(const JsonReader& r, int channels) {
  NormalizeConfig n;
  if (!r.has("normalize")) return n;
  const json& v = r.get("normalize");
  if (v.is_string()) {
    std::string mode = r.as_choice(v, r.path_of("normalize"), {"none", "computed"});
    n.mode = mode == "none" ? NormalizeMode::None : NormalizeMode::Computed;
    return n;
  }
  if (!v.is_object()) {
    r.fail("normalize",
           "expected \"none\", \"computed\" or {\"mean\": [...], \"std\": [...]}, got " +
               describe_json_value(v));
  }
  JsonReader given = r.child("normalize");
  given.allow_keys({"mean", "std"});
  n.mode = NormalizeMode::Given;
  auto per_channel = static_cast<size_t>(channels);
  n.mean = given.number_array("mean", NumberRange::any(), per_channel, std::nullopt);
  n.std = given.number_array("std", NumberRange::positive(), per_channel, std::nullopt);
  return n;
}

Schema<ImageFolderOptions> make_image_folder_schema() {
  using S = ImageFolderOptions;
  Schema<S> s;
  s.fields = {
      integer<S>(
          "channels", [](auto& o) -> auto& { return o.channels; }, 1, 3, constant<S>(3)),
      custom<S>(
          "size", constant<S>(json{32, 32}),
          [](const JsonReader& r, S& o, const SchemaContext&) {
            std::vector<int64_t> size =
                r.integer_array("size", 1, 65536, 2, std::vector<int64_t>{32, 32});
            o.height = static_cast<int>(size[0]);
            o.width = static_cast<int>(size[1]);
          },
          [](const S& o) {
            return json{o.height, o.width};
          }),
      boolean<S>(
          "resize", [](auto& o) -> auto& { return o.resize; }, true),
  };
  s.check = [](const JsonReader& r, S& o, const SchemaContext&) {
    if (o.channels == 2) r.fail("channels", "expected 1 (grey) or 3 (RGB), got 2");
  };
  return s;
}

Schema<SyntheticOptions> make_synthetic_schema() {
  using S = SyntheticOptions;
  const S d;
  Schema<S> s;
  s.fields = {
      integer<S>(
          "train_size", [](auto& o) -> auto& { return o.train_size; }, 1, kMaxInt,
          constant<S>(d.train_size)),
      integer<S>(
          "test_size", [](auto& o) -> auto& { return o.test_size; }, 1, kMaxInt,
          constant<S>(d.test_size)),
      integer<S>(
          "channels", [](auto& o) -> auto& { return o.channels; }, 1, 64, constant<S>(d.channels)),
      integer<S>(
          "height", [](auto& o) -> auto& { return o.height; }, 1, 4096, constant<S>(d.height)),
      integer<S>(
          "width", [](auto& o) -> auto& { return o.width; }, 1, 4096, constant<S>(d.width)),
      integer<S>(
          "classes", [](auto& o) -> auto& { return o.classes; }, 2, 100000, constant<S>(d.classes)),
      number<S>(
          "noise", [](auto& o) -> auto& { return o.noise; }, NumberRange::non_negative(),
          constant<S>(d.noise)),
      integer<S>(
          "seed", [](auto& o) -> auto& { return o.seed; }, 0, kMaxInt64, constant<S>(0)),
  };
  s.check = [](const JsonReader& r, S& o, const SchemaContext&) {
    const double bytes = static_cast<double>(o.train_size + o.test_size) * o.channels * o.height *
                         o.width * static_cast<double>(sizeof(float));
    if (bytes > kMaxSyntheticBytes) {
      r.fail_at(r.path(), "(train_size + test_size) x channels x height x width is " +
                              describe_json_value(bytes / (1ull << 30)) +
                              " GiB of images; at most 64 GiB are generated");
    }
  };
  return s;
}

Schema<AugmentationConfig> make_augmentation_schema() {
  using S = AugmentationConfig;
  Schema<S> s;
  s.fields = {
      integer<S>(
          "random_crop_padding", [](auto& a) -> auto& { return a.random_crop_padding; }, 0, 1024,
          constant<S>(0)),
      boolean<S>(
          "horizontal_flip", [](auto& a) -> auto& { return a.horizontal_flip; }, false),
      custom<S>(
          "normalize", constant<S>("computed"),
          [](const JsonReader& r, S& a, const SchemaContext& c) {
            a.normalize = read_normalize(r, c.root ? c.root->data.channels() : 0);
          },
          [](const S& a) { return normalize_json(a.normalize); }),
  };
  return s;
}

Schema<LoaderConfig> make_loader_schema() {
  using S = LoaderConfig;
  Schema<S> s;
  s.fields = {boolean<S>(
      "prefetch", [](auto& l) -> auto& { return l.prefetch; }, true)};
  return s;
}

const Schema<ImageFolderOptions>& image_folder_schema() {
  static const Schema<ImageFolderOptions> s = make_image_folder_schema();
  return s;
}
const Schema<SyntheticOptions>& synthetic_schema() {
  static const Schema<SyntheticOptions> s = make_synthetic_schema();
  return s;
}
const Schema<AugmentationConfig>& augmentation_schema() {
  static const Schema<AugmentationConfig> s = make_augmentation_schema();
  return s;
}
const Schema<LoaderConfig>& loader_schema() {
  static const Schema<LoaderConfig> s = make_loader_schema();
  return s;
}

// The training images known at config time: synthetic data's size, or the subset's (the subset
// is checked against the data when it loads). 0 when unknown.
int64_t known_train_images(const DataConfig& d) {
  if (d.train_subset > 0) return d.train_subset;
  return d.kind == DataKind::Synthetic ? d.synthetic.train_size : 0;
}

Schema<DataConfig> make_data_schema() {
  using S = DataConfig;
  Schema<S> s;
  s.fields = {
      discriminator(choice<S>(
          "kind", [](auto& d) -> auto& { return d.kind; }, data_kind_table, required<S>())),
      untracked(when<S>(custom<S>(
                            "path",
                            [](const S& d, const SchemaContext&) {
                              std::string p = default_data_path(d.kind);
                              return p.empty() ? std::nullopt : std::optional<json>(p);
                            },
                            [](const JsonReader& r, S& d, const SchemaContext&) {
                              std::string p = default_data_path(d.kind);
                              d.path =
                                  r.string("path", p.empty() ? std::nullopt : std::optional(p));
                            },
                            [](const S& d) { return json(d.path); }),
                        [](const S& d) { return d.kind != DataKind::Synthetic; })),
      when<S>(choice<S>(
                  "label", [](auto& d) -> auto& { return d.label; }, cifar100_label_table,
                  constant<S>("fine")),
              [](const S& d) { return d.kind == DataKind::Cifar100; }),
      when<S>(
          section<S>(
              "image_folder", [](auto& d) -> auto& { return d.image_folder; }, image_folder_schema),
          [](const S& d) { return d.kind == DataKind::ImageFolder; }),
      when<S>(section<S>(
                  "synthetic", [](auto& d) -> auto& { return d.synthetic; }, synthetic_schema),
              [](const S& d) { return d.kind == DataKind::Synthetic; }),
      integer<S>(
          "train_subset", [](auto& d) -> auto& { return d.train_subset; }, 0, kMaxInt64,
          constant<S>(0)),
      integer<S>(
          "subset_seed", [](auto& d) -> auto& { return d.subset_seed; }, 0, kMaxInt64,
          constant<S>(0)),
      choice<S>(
          "subset_mode", [](auto& d) -> auto& { return d.subset_mode; }, subset_mode_table,
          constant<S>("stratified")),
      number<S>(
          "validation_split", [](auto& d) -> auto& { return d.validation_split; },
          NumberRange::unit_right_open(), constant<S>(0.0)),
      tracked_when<S>(number<S>(
                          "label_noise", [](auto& d) -> auto& { return d.label_noise; },
                          NumberRange::unit_right_open(), constant<S>(0.0)),
                      [](const ExperimentConfig& c) { return c.data.label_noise != 0; }),
      section<S>(
          "augmentation", [](auto& d) -> auto& { return d.augmentation; }, augmentation_schema),
      untracked(section<S>(
          "loader", [](auto& d) -> auto& { return d.loader; }, loader_schema)),
  };
  s.context = [](const S& d) {
    return "data kind \"" + std::string(data_kind_name(d.kind)) + "\"";
  };
  s.check = [](const JsonReader& r, S& d, const SchemaContext& c) {
    d.source = c.source;
    if (d.kind == DataKind::Synthetic && d.train_subset > d.synthetic.train_size) {
      r.fail("train_subset", "expected at most data.synthetic.train_size (" +
                                 std::to_string(d.synthetic.train_size) + "), got " +
                                 std::to_string(d.train_subset));
    }
    const int64_t n = known_train_images(d);
    if (d.validation_split > 0 && n > 0) {
      const int64_t n_val = d.validation_size(n);
      if (n_val < 1 || n_val >= n) {
        r.fail("validation_split", describe_json_value(d.validation_split) + " of " +
                                       std::to_string(n) + " training images holds out " +
                                       std::to_string(n_val) + ", which leaves an empty " +
                                       (n_val < 1 ? "validation" : "training") + " set");
      }
    }
  };
  return s;
}

// ---- model ------------------------------------------------------------------------------------

Schema<ModelConfig> make_model_schema() {
  using S = ModelConfig;
  Schema<S> s;
  s.precheck = [](const JsonReader& r) {
    const bool has_preset = r.has("preset"), has_layers = r.has("layers");
    if (has_preset && has_layers) {
      r.fail_at(r.path(), "both \"preset\" and \"layers\" given; give exactly one of them");
    }
    if (!has_preset && !has_layers) {
      r.fail_at(r.path(), "neither \"preset\" nor \"layers\" given; give exactly one of them");
    }
  };
  s.fields = {
      discriminator(when<S>(custom<S>(
                                "preset", required<S>(),
                                [](const JsonReader& r, S& m, const SchemaContext&) {
                                  if (r.has("preset"))
                                    m.preset = r.choice("preset", preset_names(), std::nullopt);
                                },
                                [](const S& m) { return json(m.preset); }),
                            [](const S& m) { return m.uses_preset(); })),
      when<S>(number<S>(
                  "width", [](auto& m) -> auto& { return m.width; },
                  NumberRange{0.0, 64.0, true, false}, constant<S>(1.0)),
              [](const S& m) { return m.uses_preset(); }),
      when<S>(custom<S>(
                  "layers", required<S>(),
                  [](const JsonReader& r, S& m, const SchemaContext&) {
                    const json& layers = r.get("layers");
                    if (!layers.is_array() || layers.empty()) {
                      r.fail("layers", "expected a non-empty array of layer objects, got " +
                                           describe_json_value(layers));
                    }
                    for (size_t i = 0; i < layers.size(); ++i) {
                      if (!layers[i].is_object()) {
                        r.fail_at(json_path_index(r.path_of("layers"), i),
                                  "expected a layer object, got " + describe_json_value(layers[i]));
                      }
                    }
                    m.layers = layers;
                  },
                  [](const S& m) { return m.layers; }),
              [](const S& m) { return !m.uses_preset(); }),
  };
  s.context = [](const S& m) {
    return m.uses_preset() ? std::string("a model given by \"preset\"")
                           : std::string("a model given by \"layers\"");
  };
  return s;
}

// ---- optimizer --------------------------------------------------------------------------------

bool optimizer_has(const OptimizerConfig& o, const std::string& key) {
  const Keys& keys = optimizer_info(o.name).keys;
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

Schema<OptimizerConfig> make_optimizer_schema() {
  using S = OptimizerConfig;
  const OptimHyper d;  // PyTorch's defaults of the keys every optimizer shares
  auto of = [](const std::string& key) {
    return [key](const S& o) { return optimizer_has(o, key); };
  };
  Schema<S> s;
  s.fields = {
      discriminator(custom<S>(
          "name", required<S>(),
          [](const JsonReader& r, S& o, const SchemaContext&) {
            o.name = table_value(optimizer_table(),
                                 r.choice("name", table_names(optimizer_table()), std::nullopt));
            o.hyper.rule = optimizer_info(o.name).rule;
          },
          [](const S& o) { return json(optimizer_name(o.name)); })),
      when<S>(number<S>(
                  "lr", [](auto& o) -> auto& { return o.hyper.lr; }, NumberRange::positive(),
                  [](const S& o, const SchemaContext&) {
                    auto lr = optimizer_info(o.name).default_lr;
                    return lr ? std::optional<json>(*lr) : std::nullopt;
                  }),
              of("lr")),
      when<S>(number<S>(
                  "momentum", [](auto& o) -> auto& { return o.hyper.momentum; },
                  NumberRange::unit_right_open(), constant<S>(d.momentum)),
              of("momentum")),
      when<S>(number<S>(
                  "dampening", [](auto& o) -> auto& { return o.hyper.dampening; },
                  NumberRange::unit_closed(), constant<S>(d.dampening)),
              of("dampening")),
      when<S>(boolean<S>(
                  "nesterov", [](auto& o) -> auto& { return o.hyper.nesterov; }, d.nesterov),
              of("nesterov")),
      when<S>(custom<S>(
                  "betas", constant<S>(json{d.beta1, d.beta2}),
                  [d](const JsonReader& r, S& o, const SchemaContext&) {
                    std::vector<double> betas = r.number_array(
                        "betas", NumberRange::unit_right_open(), 2, std::vector{d.beta1, d.beta2});
                    o.hyper.beta1 = betas[0];
                    o.hyper.beta2 = betas[1];
                  },
                  [](const S& o) {
                    return json{o.hyper.beta1, o.hyper.beta2};
                  }),
              of("betas")),
      when<S>(number<S>(
                  "eps", [](auto& o) -> auto& { return o.hyper.eps; }, NumberRange::positive(),
                  [](const S& o, const SchemaContext&) {
                    return std::optional<json>(optimizer_info(o.name).default_eps);
                  }),
              of("eps")),
      when<S>(boolean<S>(
                  "amsgrad", [](auto& o) -> auto& { return o.hyper.amsgrad; }, d.amsgrad),
              of("amsgrad")),
      when<S>(number<S>(
                  "lr_decay", [](auto& o) -> auto& { return o.hyper.lr_decay; },
                  NumberRange::non_negative(), constant<S>(d.lr_decay)),
              of("lr_decay")),
      when<S>(
          number<S>(
              "initial_accumulator", [](auto& o) -> auto& { return o.hyper.initial_accumulator; },
              NumberRange::non_negative(), constant<S>(d.initial_accumulator)),
          of("initial_accumulator")),
      when<S>(number<S>(
                  "alpha", [](auto& o) -> auto& { return o.hyper.alpha; },
                  NumberRange::unit_right_open(), constant<S>(d.alpha)),
              of("alpha")),
      when<S>(boolean<S>(
                  "centered", [](auto& o) -> auto& { return o.hyper.centered; }, d.centered),
              of("centered")),
      when<S>(number<S>(
                  "rho", [](auto& o) -> auto& { return o.hyper.rho; },
                  NumberRange::unit_right_open(), constant<S>(d.rho)),
              of("rho")),
  };
  s.context = [](const S& o) {
    return "optimizer \"" + std::string(optimizer_name(o.name)) + "\"";
  };
  s.check = [](const JsonReader& r, S& o, const SchemaContext&) {
    const OptimHyper& h = o.hyper;
    if (h.nesterov && (h.momentum <= 0.0 || h.dampening != 0.0)) {
      r.fail("nesterov", "needs momentum > 0 and dampening 0 (got momentum " +
                             describe_json_value(h.momentum) + ", dampening " +
                             describe_json_value(h.dampening) + ")");
    }
  };
  return s;
}

// ---- regularization ---------------------------------------------------------------------------

std::vector<ParamGroup> read_param_groups(const JsonReader& r) {
  if (!r.has("groups")) return every_param_group();
  const json& v = r.get("groups");
  if (!v.is_array()) {
    r.fail("groups", "expected an array of group names, got " + describe_json_value(v));
  }
  std::set<ParamGroup> chosen;
  for (size_t i = 0; i < v.size(); ++i) {
    std::string path = json_path_index(r.path_of("groups"), i);
    ParamGroup g =
        table_value(param_group_table(), r.as_choice(v[i], path, table_names(param_group_table())));
    if (!chosen.insert(g).second) r.fail_at(path, "group " + v[i].dump() + " is listed twice");
  }
  return {chosen.begin(), chosen.end()};  // ParamGroup order
}

Schema<RegularizationConfig> make_regularization_schema() {
  using S = RegularizationConfig;
  Schema<S> s;
  s.fields = {
      discriminator(choice<S>(
          "kind", [](auto& g) -> auto& { return g.kind; }, reg_kind_table,
          [](const S&, const SchemaContext& c) {
            RegKind k = c.root ? optimizer_info(c.root->optimizer.name).default_reg : RegKind::L2;
            return std::optional<json>(reg_kind_name(k));
          })),
      number<S>(
          "lambda", [](auto& g) -> auto& { return g.lambda; }, NumberRange::non_negative(),
          constant<S>(0.0)),
      when<S>(custom<S>(
                  "groups", constant<S>(table_names(param_group_table())),
                  [](const JsonReader& r, S& g, const SchemaContext&) {
                    g.groups = read_param_groups(r);
                  },
                  [](const S& g) {
                    json groups = json::array();
                    for (ParamGroup p : g.groups) groups.push_back(param_group_name(p));
                    return groups;
                  }),
              [](const S& g) { return g.kind != RegKind::None; }),
      when<S>(boolean<S>(
                  "scale_with_lr_schedule",
                  [](auto& g) -> auto& { return g.scale_with_lr_schedule; }, true),
              [](const S& g) { return g.kind == RegKind::Decoupled; }),
  };
  s.context = [](const S& g) {
    return "regularization kind \"" + std::string(reg_kind_name(g.kind)) + "\"";
  };
  s.check = [](const JsonReader& r, S& g, const SchemaContext&) {
    if (g.kind == RegKind::None && g.lambda != 0.0) {
      r.fail("lambda", "must be 0 with kind \"none\" (got " + describe_json_value(g.lambda) +
                           "); choose kind \"l2\" or \"decoupled\"");
    }
  };
  return s;
}

// ---- schedule ---------------------------------------------------------------------------------

Schema<ScheduleConfig> make_schedule_schema() {
  using S = ScheduleConfig;
  auto is = [](std::initializer_list<ScheduleKind> kinds) {
    std::vector<ScheduleKind> k(kinds);
    return [k](const S& s) { return std::find(k.begin(), k.end(), s.kind) != k.end(); };
  };
  Schema<S> s;
  s.fields = {
      discriminator(choice<S>(
          "kind", [](auto& x) -> auto& { return x.kind; }, schedule_kind_table,
          constant<S>("constant"))),
      when<S>(
          integer<S>(
              "step_size", [](auto& x) -> auto& { return x.step_size; }, 1, kMaxInt, required<S>()),
          is({ScheduleKind::Step})),
      when<S>(custom<S>(
                  "milestones", required<S>(),
                  [](const JsonReader& r, S& x, const SchemaContext&) {
                    std::vector<int64_t> m =
                        r.integer_array("milestones", 1, kMaxInt, 0, std::nullopt);
                    if (m.empty())
                      r.fail("milestones", "expected a non-empty array of epochs, got []");
                    for (size_t i = 1; i < m.size(); ++i) {
                      if (m[i] <= m[i - 1]) {
                        r.fail_at(json_path_index(r.path_of("milestones"), i),
                                  "milestones must increase strictly, got " + std::to_string(m[i]) +
                                      " after " + std::to_string(m[i - 1]));
                      }
                    }
                    x.milestones.assign(m.begin(), m.end());
                  },
                  [](const S& x) { return json(x.milestones); }),
              is({ScheduleKind::MultiStep})),
      when<S>(number<S>(
                  "gamma", [](auto& x) -> auto& { return x.gamma; }, NumberRange::unit_left_open(),
                  constant<S>(0.1)),
              is({ScheduleKind::Step, ScheduleKind::MultiStep})),
      when<S>(number<S>(
                  "min_lr", [](auto& x) -> auto& { return x.min_lr; }, NumberRange::non_negative(),
                  constant<S>(0.0)),
              is({ScheduleKind::Cosine})),
      integer<S>(
          "warmup_epochs", [](auto& x) -> auto& { return x.warmup_epochs; }, 0, kMaxInt,
          constant<S>(0)),
      number<S>(
          "warmup_start_factor", [](auto& x) -> auto& { return x.warmup_start_factor; },
          NumberRange::unit_left_open(), constant<S>(0.1)),
  };
  s.context = [](const S& x) {
    return "schedule kind \"" + std::string(schedule_kind_name(x.kind)) + "\"";
  };
  s.check = [](const JsonReader& r, S& x, const SchemaContext& c) {
    const double base_lr = c.root ? c.root->optimizer.hyper.lr : 0.0;
    if (x.kind == ScheduleKind::Cosine && x.min_lr > base_lr) {
      r.fail("min_lr", "expected a number <= optimizer.lr (" + describe_json_value(base_lr) +
                           "), got " + describe_json_value(x.min_lr));
    }
  };
  return s;
}

// ---- training, statistics, output, sparsity ---------------------------------------------------

Schema<DivergenceConfig> make_divergence_schema() {
  using S = DivergenceConfig;
  Schema<S> s;
  s.fields = {
      number<S>(
          "factor", [](auto& d) -> auto& { return d.factor; }, NumberRange::non_negative(),
          constant<S>(100.0)),
      number<S>(
          "max_loss", [](auto& d) -> auto& { return d.max_loss; }, NumberRange::non_negative(),
          constant<S>(0.0)),
  };
  return s;
}

const Schema<DivergenceConfig>& divergence_schema() {
  static const Schema<DivergenceConfig> s = make_divergence_schema();
  return s;
}

Schema<TrainingConfig> make_training_schema() {
  using S = TrainingConfig;
  Schema<S> s;
  Field<S> epochs = integer<S>(
      "epochs", [](auto& t) -> auto& { return t.epochs; }, 1, 1000000, required<S>());
  // A cosine schedule's lr curve depends on the epoch count; otherwise a finished run may be
  // continued for more epochs.
  epochs.fingerprint = [](const ExperimentConfig& c) {
    return c.schedule.kind == ScheduleKind::Cosine;
  };
  s.fields = {
      integer<S>(
          "batch_size", [](auto& t) -> auto& { return t.batch_size; }, 1, kMaxInt, required<S>()),
      epochs,
      integer<S>(
          "seed", [](auto& t) -> auto& { return t.seed; }, 0, kMaxInt64, constant<S>(0)),
      untracked(integer<S>(
          "threads", [](auto& t) -> auto& { return t.threads; }, 0, 4096, constant<S>(0))),
      untracked(choice<S>(
          "device", [](auto& t) -> auto& { return t.device; }, device_table, constant<S>("auto"))),
      boolean<S>(
          "drop_last", [](auto& t) -> auto& { return t.drop_last; }, false),
      untracked(integer<S>(
          "eval_every", [](auto& t) -> auto& { return t.eval_every; }, 1, kMaxInt, constant<S>(1))),
      // Policies for a run that goes wrong: a run they let finish computed the same either way.
      untracked(section<S>(
          "divergence", [](auto& t) -> auto& { return t.divergence; }, divergence_schema)),
      untracked(choice<S>(
          "on_nonfinite", [](auto& t) -> auto& { return t.on_nonfinite; }, nonfinite_policy_table,
          constant<S>("stop"))),
  };
  return s;
}

Schema<ActivationStatsConfig> make_activation_schema() {
  using S = ActivationStatsConfig;
  Schema<S> s;
  s.fields = {
      boolean<S>(
          "train_pass", [](auto& a) -> auto& { return a.train_pass; }, true),
      integer<S>(
          "exact_every", [](auto& a) -> auto& { return a.exact_every; }, 0, kMaxInt,
          constant<S>(0)),
      boolean<S>(
          "exact_final", [](auto& a) -> auto& { return a.exact_final; }, true),
      number<S>(
          "threshold", [](auto& a) -> auto& { return a.threshold; }, NumberRange::positive(),
          constant<S>(1e-12)),
  };
  return s;
}

const Schema<ActivationStatsConfig>& activation_schema() {
  static const Schema<ActivationStatsConfig> s = make_activation_schema();
  return s;
}

Schema<StatisticsConfig> make_statistics_schema() {
  using S = StatisticsConfig;
  Schema<S> s;
  s.fields = {
      section<S>(
          "activation", [](auto& x) -> auto& { return x.activation; }, activation_schema),
      number<S>(
          "gamma_threshold", [](auto& x) -> auto& { return x.gamma_threshold; },
          NumberRange::positive(), constant<S>(1e-3)),
      number<S>(
          "selectivity_threshold", [](auto& x) -> auto& { return x.selectivity_threshold; },
          NumberRange{0.0, 1.0, true, true}, constant<S>(1e-3)),
      boolean<S>(
          "per_filter_final", [](auto& x) -> auto& { return x.per_filter_final; }, true),
  };
  return s;
}

bool is_valid_run_name(const std::string& name) {
  if (name.empty() || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

std::string default_run_name(const std::string& source_name) {
  std::string stem = std::filesystem::path(source_name).stem().string();
  return is_valid_run_name(stem) ? stem : "experiment";
}

Schema<OutputConfig> make_output_schema() {
  using S = OutputConfig;
  Schema<S> s;
  s.fields = {
      custom<S>(
          "name",
          [](const S&, const SchemaContext& c) {
            return std::optional<json>(default_run_name(c.source));
          },
          [](const JsonReader& r, S& o, const SchemaContext& c) {
            o.name = r.string("name", default_run_name(c.source));
            if (!is_valid_run_name(o.name)) {
              r.fail("name", "expected letters, digits, '-', '_' or '.', got \"" + o.name + "\"");
            }
          },
          [](const S& o) { return json(o.name); }),
      custom<S>(
          "dir",
          [](const S& o, const SchemaContext&) { return std::optional<json>("runs/" + o.name); },
          [](const JsonReader& r, S& o, const SchemaContext&) {
            o.dir = r.string("dir", "runs/" + o.name);
          },
          [](const S& o) { return json(o.dir); }),
      integer<S>(
          "checkpoint_every", [](auto& o) -> auto& { return o.checkpoint_every; }, 0, kMaxInt,
          constant<S>(1)),
      integer<S>(
          "keep_checkpoints", [](auto& o) -> auto& { return o.keep_checkpoints; }, 0, kMaxInt,
          constant<S>(2)),
      choice<S>(
          "progress", [](auto& o) -> auto& { return o.progress; }, progress_table,
          constant<S>("auto")),
  };
  return s;
}

Schema<SparsityConfig> make_sparsity_schema() {
  using S = SparsityConfig;
  Schema<S> s;
  s.fields = {
      boolean<S>(
          "skip_dead", [](auto& x) -> auto& { return x.skip_dead; }, false),
      integer<S>(
          "skip_after", [](auto& x) -> auto& { return x.skip_after; }, 1, kMaxInt, constant<S>(3)),
      integer<S>(
          "check_every", [](auto& x) -> auto& { return x.check_every; }, 1, kMaxInt,
          constant<S>(1)),
      integer<S>(
          "revival_every", [](auto& x) -> auto& { return x.revival_every; }, 0, kMaxInt,
          constant<S>(0)),
  };
  return s;
}

// ---- the top level ----------------------------------------------------------------------------

Schema<ExperimentConfig> make_experiment_schema() {
  using S = ExperimentConfig;
  Field<S> description = custom<S>(
      "description", constant<S>(""),
      [](const JsonReader& r, S& c, const SchemaContext&) {
        if (!r.has("description")) return;
        const json& v = r.get("description");
        if (!v.is_string())
          r.fail("description", "expected a string, got " + describe_json_value(v));
        if (v.get_ref<const std::string&>().size() > kMaxDescriptionBytes) {
          r.fail("description", "is " + std::to_string(v.get_ref<const std::string&>().size()) +
                                    " bytes long; at most " + std::to_string(kMaxDescriptionBytes) +
                                    " are kept");
        }
        c.description = v.get<std::string>();
      },
      [](const S& c) { return json(c.description); });
  description.omit_if = [](const S& c) { return c.description.empty(); };
  Schema<S> s;
  s.fields = {
      custom<S>(
          "version", required<S>(),
          [](const JsonReader& r, S& c, const SchemaContext&) {
            if (!r.has("version")) {
              r.fail("version", "missing required key (this build reads version " +
                                    std::to_string(kConfigVersion) + ")");
            }
            int64_t version = r.as_integer(r.get("version"), "version", 1, kMaxInt);
            if (version != kConfigVersion) {
              r.fail("version", "unsupported version " + std::to_string(version) +
                                    "; this build reads version " + std::to_string(kConfigVersion));
            }
            c.version = static_cast<int>(version);
          },
          [](const S& c) { return json(c.version); }),
      untracked(description),
      section<S>(
          "data", [](auto& c) -> auto& { return c.data; }, data_schema),
      section<S>(
          "model", [](auto& c) -> auto& { return c.model; }, model_schema),
      section<S>(
          "optimizer", [](auto& c) -> auto& { return c.optimizer; }, optimizer_schema),
      section<S>(
          "regularization", [](auto& c) -> auto& { return c.regularization; },
          regularization_schema),
      section<S>(
          "schedule", [](auto& c) -> auto& { return c.schedule; }, schedule_schema),
      section<S>(
          "training", [](auto& c) -> auto& { return c.training; }, training_schema),
      untracked(section<S>(
          "statistics", [](auto& c) -> auto& { return c.statistics; }, statistics_schema)),
      untracked(section<S>(
          "output", [](auto& c) -> auto& { return c.output; }, output_schema)),
      section<S>(
          "sparsity", [](auto& c) -> auto& { return c.sparsity; }, sparsity_schema),
  };
  return s;
}

}  // namespace

const Schema<ExperimentConfig>& experiment_schema() {
  static const Schema<ExperimentConfig> s = make_experiment_schema();
  return s;
}
const Schema<DataConfig>& data_schema() {
  static const Schema<DataConfig> s = make_data_schema();
  return s;
}
const Schema<ModelConfig>& model_schema() {
  static const Schema<ModelConfig> s = make_model_schema();
  return s;
}
const Schema<OptimizerConfig>& optimizer_schema() {
  static const Schema<OptimizerConfig> s = make_optimizer_schema();
  return s;
}
const Schema<RegularizationConfig>& regularization_schema() {
  static const Schema<RegularizationConfig> s = make_regularization_schema();
  return s;
}
const Schema<ScheduleConfig>& schedule_schema() {
  static const Schema<ScheduleConfig> s = make_schedule_schema();
  return s;
}
const Schema<TrainingConfig>& training_schema() {
  static const Schema<TrainingConfig> s = make_training_schema();
  return s;
}
const Schema<StatisticsConfig>& statistics_schema() {
  static const Schema<StatisticsConfig> s = make_statistics_schema();
  return s;
}
const Schema<OutputConfig>& output_schema() {
  static const Schema<OutputConfig> s = make_output_schema();
  return s;
}
const Schema<SparsityConfig>& sparsity_schema() {
  static const Schema<SparsityConfig> s = make_sparsity_schema();
  return s;
}

std::vector<SchemaKey> schema_keys() {
  std::vector<SchemaKey> out;
  list_section(experiment_schema(), "", ExperimentConfig{}, out);
  return out;
}

}  // namespace st
