/**
 * The saved-model layout (tfjs layers format): `model.json` names the weights file beside it. Kept
 * free of imports so the run's output contracts (pipeline/contracts/train.ts) can name it without
 * loading the store or tfjs modules.
 */
export const MODEL_JSON_KEY = 'model.json';
