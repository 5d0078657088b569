// A reader of what torch.save writes into its zip archive (data.pkl and the data/<key> records), limited to
// what weight files hold, as torch.load(weights_only=True) is: dicts (plain, and collections.OrderedDict
// with its attributes such as state_dict's _metadata dropped), lists, tuples, strings, numbers, booleans,
// None and tensors (torch._utils._rebuild_tensor_v2 / _rebuild_parameter over typed storages). Nothing
// in the file is executed: any other global becomes an opaque placeholder (isOpaque), an error only where a
// caller needs the value. Every storage is checked against the size of its record and every tensor against
// its storage, and tensors land on the CPU whatever device they were saved from (map_location='cpu').
#pragma once

#include <ATen/core/ivalue.h>

#include <string>

namespace caffe2::serialize {
class PyTorchStreamReader;
}

namespace semiseg::io {

// Parses `<archive>/data.pkl` of `reader`; errors (c10::Error) name `path` and start with `fn`.
c10::IValue readTorchPickle(caffe2::serialize::PyTorchStreamReader& reader, const std::string& path, const char* fn);

// Whether `v` stands for an object readTorchPickle did not build (a global outside weight files: a numpy
// scalar, an argparse.Namespace, ...), and its "module.name".
bool isOpaque(const c10::IValue& v);
std::string opaqueName(const c10::IValue& v);

}  // namespace semiseg::io
