// A run plan (docs/formats.md "Run plan"): checked once where it is read, against plan.json and the
// references the schema cannot express (the entry, and each declared callee of the right kind).

import { checkPlanSchema, firstError } from "./schemas.js";

/**
 * @typedef {{host: string, guest: string, writable: boolean, digest: string | null}} Mount
 * @typedef {{hosts: string[], mounts: Mount[], kv: boolean, wasi: boolean | null, memory_pages: number, timeout_ms: number}} Grant
 * @typedef {import("./http.js").SecretRef} SecretRef
 * @typedef {{digest: string, path: string, size: number}} ModuleRef
 * @typedef {{
 *   kind: "llm" | "tool" | "agent", description: string, where: string, package: string | null, features: string[],
 *   module: ModuleRef, grant: Grant, config: Record<string, string>, secrets: SecretRef[],
 *   calls: {llms: string[], tools: string[], agents: string[]}, input_schema: object | null
 * }} Component
 * @typedef {{
 *   plan_version: 1, abi: 1, app: {name: string, source: string, origin: object | null},
 *   entry: string, kv_scope: string, components: Record<string, Component>
 * }} Plan
 */

export class PlanInvalid extends Error {}

/**
 * The plan, checked; PlanInvalid names the first field that is wrong.
 * @param {unknown} data a parsed plan (`cspm plan APP --json`)
 * @returns {Plan}
 */
export function loadPlan(data) {
  if (!checkPlanSchema(data)) throw new PlanInvalid(`the plan is invalid: ${firstError(checkPlanSchema)}`);
  const plan = /** @type {Plan} */ (data);
  const names = Object.keys(plan.components);
  if (!Object.hasOwn(plan.components, plan.entry)) {
    throw new PlanInvalid(`entry: ${JSON.stringify(plan.entry)} is not one of the plan's components`);
  }
  for (const name of names) {
    const calls = plan.components[name].calls;
    for (const [section, kind] of /** @type {const} */ ([["llms", "llm"], ["tools", "tool"], ["agents", "agent"]])) {
      for (const callee of calls[section]) {
        if (!Object.hasOwn(plan.components, callee) || plan.components[callee].kind !== kind) {
          throw new PlanInvalid(`components/${name}/calls/${section}: ${JSON.stringify(callee)} is not a ${kind} of the plan`);
        }
      }
    }
  }
  return plan;
}
