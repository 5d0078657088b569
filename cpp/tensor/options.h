// dtype and device names as semiseg spells them ("float32", "bfloat16", "cuda:1"), both ways.
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>
#include <c10/core/TensorOptions.h>

#include <string>

namespace semiseg {

// "float32" | "float64" | "float16" | "bfloat16" | "int32" | "int64" | "uint8" | "bool".
c10::ScalarType parseDtype(const std::string& name, const char* argName = "dtype");
std::string dtypeName(c10::ScalarType t);

// "cpu" | "cuda" | "cuda:N". A CUDA device is checked against what this process can use.
c10::Device parseDevice(const std::string& name, const char* argName = "device");
std::string deviceName(const c10::Device& d);

c10::TensorOptions makeOptions(const std::string& dtype, const std::string& device);

}  // namespace semiseg
