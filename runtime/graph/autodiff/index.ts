export { buildGradientGraph, buildVjpGraph, planGradient, type GradientOptions, type GradientPlan, type VjpOptions } from './grad.js';
export { GraphExtender } from './extend.js';
export { GRAD_RULES, NON_DIFFERENTIABLE, isShapeOnlyInput } from './rules.js';
