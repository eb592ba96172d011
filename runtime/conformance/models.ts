import { SafetensorsFile } from '../safetensors/reader.js';
import { WeightSet } from '../models/weights.js';
import { inferUnetConfig, type UnetConfigOverrides } from '../models/unet/config.js';
import { UnetModel } from '../models/unet/model.js';
import { ControlNet } from '../models/controlnet/controlnet.js';
import type { ConformanceCase } from './case.js';

/** Head settings from a case's ComfyUI unet config (heads cannot be read off tensor shapes). */
export function headOverrides(cfg: any): UnetConfigOverrides {
  if (!cfg) return {};
  const o: UnetConfigOverrides = {};
  if (typeof cfg.num_heads === 'number' && cfg.num_heads > 0) o.numHeads = cfg.num_heads;
  if (typeof cfg.num_head_channels === 'number' && cfg.num_head_channels > 0) o.numHeadChannels = cfg.num_head_channels;
  return o;
}

/** Models shared by the cases of one conformance run, so each file is compiled once. */
export class CaseModels {
  private unets = new Map<string, UnetModel>();
  private controlnets = new Map<string, Promise<ControlNet>>();

  checkpointPath(c: ConformanceCase): string {
    const rel = c.json.models?.checkpoint?.file;
    if (!rel) throw new Error(`${c.dir}: case.json names no models.checkpoint.file`);
    return c.modelPath(rel);
  }

  unet(c: ConformanceCase): UnetModel {
    const path = this.checkpointPath(c);
    let u = this.unets.get(path);
    if (!u) {
      const file = SafetensorsFile.open(path);
      const w = new WeightSet(file, 'model.diffusion_model.');
      u = new UnetModel(w, inferUnetConfig(w, headOverrides(c.json.models.checkpoint.unet_config_comfy), file.metadata));
      this.unets.set(path, u);
    }
    return u;
  }

  controlnet(c: ConformanceCase): Promise<ControlNet> {
    const m = c.json.models?.controlnet;
    if (!m?.file) throw new Error(`${c.dir}: case.json names no models.controlnet.file`);
    const path = c.modelPath(m.file);
    let p = this.controlnets.get(path);
    if (!p) {
      p = ControlNet.load(path, headOverrides(m.config_comfy ?? c.json.models.checkpoint?.unet_config_comfy));
      this.controlnets.set(path, p);
    }
    return p;
  }
}
