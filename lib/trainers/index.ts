/** Trainers: the published methods on the user's data, with the spec's recipes. */
export { train, buildMethod, inferenceSettings, validationSettings, type TrainEvent, type TrainOptions, type TrainResult, type BestRecord } from './loop.js';
export { RECIPES, METHODS, recipeNames, resolveConfig, type TrainConfig, type Method } from './recipes.js';
export { acdcData, laData, multiTaskData, syntheticData, type TrainData, type Volume, type AcdcDataOptions, type LaDataOptions, type SyntheticDataOptions } from './data.js';
export { evaluateVolumes, predictVolume, validateDice, type InferenceSettings, type ValidationResult } from './validate.js';
export { randomBox, bcpBox } from './methods/bcp.js';
export { rampup } from './methods/common.js';
export { IclAdaptor, ICL_SCALES, type IclScale, type AdaptorOutput } from './methods/icl-modules.js';
export { iclLosses, softDice } from './methods/icl.js';
export { DynamicHead, BatchNorm, DYNAMIC_LAYERS, DYNAMIC_PARAMS } from './methods/versemi-modules.js';
export { loadVerSemi, loadVerSemiNetwork, predictVerSemi, validateVerSemi, verSemiNetwork } from './methods/versemi.js';
export { ContrastQueue, distillationLoss, GlobalHead, Predictor, LocalHead, RepresentationHead, ancoLoss, ancoLossWith, ancoSample, windowStarts, type AncoOptions, type AncoSamples } from './methods/action-modules.js';
export { halfBox as actionBox } from './methods/action.js';
