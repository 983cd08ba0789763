// Command-line overrides of an experiment config: "optimizer.lr=1e-3", "data.kind=cifar10",
// "optimizer.betas[1]=0.99", "model.layers[2].out=64". They edit the raw JSON before validation,
// so a bad overridden value gets the same checks (and messages) as one written in the file.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace st {

// Sets the value at a dotted key path. The value is parsed as JSON; when that fails it is taken
// as a string ("cifar10" needs no quotes). `null` removes an object key, so its default applies.
// Missing objects along the path are created; an array index must be < the array's size, or equal
// to it to append. Throws ConfigError naming `flag` for malformed text or an impossible path.
void apply_override(nlohmann::json& raw, const std::string& flag);

// apply_override for each flag, in order.
void apply_overrides(nlohmann::json& raw, const std::vector<std::string>& flags);

}  // namespace st
