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
  pad,
  type InterpolateOptions,
  type InterpolateMode,
  type ConvOptions,
} from './functional.js';
export { tidy, keep, dispose } from './scope.js';
export { manualSeed, setNumThreads, getNumThreads, isGradEnabled, noGrad, liveTensors, externalMemory, buildInfo, cuda, cpuCache, setMaxConcurrentJobs, maxConcurrentJobs, pendingJobs } from './runtime.js';
export { DTYPES, type DType, type Device } from './dtype.js';
export { nets, UNet2D, VNet3D, Network, type UNet2DOptions, type VNet3DOptions, type ForwardOptions, type FeatureOutput } from './nets/index.js';
export { VerSemi, networkTask, setNetworkTask, type VerSemiOptions } from './nets/versemi.js';
export { crossEntropy, diceLoss, ceDiceLoss, softmaxMse, type DiceOptions, type DiceLossOptions } from './losses.js';
export * as ops from './ops.js';
export { Optimizer, SGD, Adam, type SGDOptions, type AdamOptions, type ParamGroup } from './train/optimizer.js';
export { constant, poly, step, lrAt, type Schedule } from './train/schedule.js';
export { emaUpdate, emaDecay, type EmaOptions } from './train/ema.js';
export { trainStep, type TrainStepOptions } from './train/step.js';
export { readTorchStateDict, writeTorchStateDict } from './io/torch.js';
export { readSafetensors, writeSafetensors, type SafetensorsFile } from './io/safetensors.js';
export { saveCheckpoint, loadCheckpoint, readCheckpointInfo, type CheckpointState, type CheckpointInfo } from './io/checkpoint.js';
export type { StateDict } from './named.js';
export type { BuildInfo, CpuCacheStats } from './native.js';
export {
  metrics,
  binaryMetrics,
  binaryMetricsAsync,
  perClassMetrics,
  largestConnectedComponent,
  MetricsTable,
  type BinaryMetrics,
  type PerClassMetrics,
  type MetricOptions,
  type EmptyPolicy,
} from './metrics.js';
export { slidingWindowInference, slidingWindowWith, sliceInference, probabilitiesToLabels, type SlidingWindowOptions, type SliceInferenceOptions } from './infer.js';
export * as trainers from './trainers/index.js';
export { ProcessGroup, distributedInfo, rendezvousFromEnv, type Rendezvous, type ConnectOptions } from './dist.js';
export { readH5, type Sample, type ReadH5Options } from './data/hdf5.js';
export { readNifti, parseNifti, parseNiftiAsync, writeNiftiLabels, encodeNiftiLabels, type NiftiImage, type ParseNiftiOptions } from './data/nifti.js';
export { type SpatialImage } from './data/image.js';
export {
  readDicomSeries,
  parseDicomSeries,
  listDicomSeries,
  DICOM_TRANSFER_SYNTAXES,
  type DicomImage,
  type DicomFile,
  type DicomSeriesMeta,
  type DicomSliceRef,
  type DicomSeriesInfo,
  type DicomReadOptions,
} from './data/dicom.js';
export {
  encodeDicomSeg,
  writeDicomSeg,
  decodeDicomSeg,
  readDicomSeg,
  newDicomUid,
  SEG_SOP_CLASS_UID,
  type DicomSegOptions,
  type SegmentDescription,
  type CodedConcept,
  type DecodedDicomSeg,
} from './data/dicom-seg.js';
export { niftiReference } from './data/nifti-header.js';
export { Segmenter, networkFromCheckpoint, ImageTooLargeError, DEFAULT_MAX_VOXELS } from './segmenter.js';
export { checkPrecision, resolvePrecision, precisionWarning, cpuFeatures, PRECISIONS, type Precision, type ResolvedPrecision } from './precision.js';
export { type InferenceSettings } from './trainers/validate.js';
export { readNnUnetDataset, type NnUnetCase, type NnUnetDataset } from './data/nnunet.js';
export { readList, acdcPatient, acdcSplit, laSplit, acdcSlicePath, acdcVolumePath, laVolumePath, type SplitLists } from './data/datasets.js';
export { acdcAugment, laAugment, rotateNearest, zoomNearest, randomCrop, type Random } from './data/augment.js';
export { TwoStreamBatchSampler } from './data/sampler.js';
export { PrefetchLoader, type Item, type Batch, type LoaderOptions } from './data/loader.js';
export { prng, syntheticCardiac, syntheticBlobs } from './demo/synthetic.js';
export { startDashboard, type Dashboard, type DashboardOptions } from './report/server.js';
export { buildReport, summarizeRun, tableRows, formatCell, markdownTable, METRICS, type ReportOptions, type RunSummary, type TableRow, type Metric } from './report/report.js';
