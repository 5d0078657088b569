/**
 * semiseg: semi-supervised medical image segmentation with LibTorch compute.
 * This entry point exports the Tensor API; later modules add networks, losses, data and trainers.
 */
export { Tensor, type Scalar, type TensorData } from './tensor.js';
export {
  tensor,
  zeros,
  ones,
  full,
  rand,
  randn,
  randint,
  arange,
  linspace,
  type TensorOptions,
  type TensorInput,
} from './create.js';
export {
  cat,
  stack,
  where,
  matmul,
  oneHot,
  interpolate,
  conv,
  type InterpolateOptions,
  type InterpolateMode,
  type ConvOptions,
} from './functional.js';
export { tidy, keep, dispose } from './scope.js';
export { manualSeed, setNumThreads, getNumThreads, isGradEnabled, noGrad, liveTensors, externalMemory, buildInfo, cuda } from './runtime.js';
export { DTYPES, type DType, type Device } from './dtype.js';
