export { buildGradientGraph, planGradient, type GradientOptions, type GradientPlan } from './grad.js';
export { GraphExtender } from './extend.js';
export { GRAD_RULES, NON_DIFFERENTIABLE, isShapeOnlyInput } from './rules.js';
