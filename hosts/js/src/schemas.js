// The JSON Schemas the host checks against, compiled once: plan.json (a copy of cspm/schemas/plan.json,
// draft 2020-12) and the ABI messages (a copy of cspm/schemas/abi/v1.json, draft 7). The copies are
// kept byte-identical to cspm's by test/schemas.test.js.

import Ajv2020Module from "ajv/dist/2020.js";
import AjvModule from "ajv";
import planSchema from "../schemas/plan.json" with { type: "json" };
import abiSchema from "../schemas/abi/v1.json" with { type: "json" };

// ajv is CommonJS: under NodeNext its default export is the module object
const Ajv2020 = /** @type {typeof Ajv2020Module.default} */ (/** @type {any} */ (Ajv2020Module).default ?? Ajv2020Module);
const Ajv = /** @type {typeof AjvModule.default} */ (/** @type {any} */ (AjvModule).default ?? AjvModule);

/** @typedef {{instancePath: string, message?: string}} SchemaError */
/** @typedef {((data: any) => boolean) & {errors?: SchemaError[] | null}} Check */

const planAjv = new Ajv2020({ allErrors: false, strict: false, unicodeRegExp: true });
/** @type {Check} */
export const checkPlanSchema = planAjv.compile(planSchema);

const abiAjv = new Ajv({ allErrors: false, strict: false });
abiAjv.addSchema(abiSchema);
/** @type {Map<string, Check>} */
const messageChecks = new Map();

/** The check of one ABI message (`http_fetch_request`, `tool_output`…). @param {string} name @returns {Check} */
export function messageCheck(name) {
  let check = messageChecks.get(name);
  if (!check) {
    check = /** @type {Check} */ (abiAjv.compile({ $ref: `${abiSchema.$id}#/$defs/${name}` }));
    messageChecks.set(name, check);
  }
  return check;
}

/** The first error of a check, worded `where: what`. @param {Check} check */
export function firstError(check) {
  const error = check.errors?.[0];
  if (!error) return "does not match its schema";
  return `${error.instancePath.slice(1) || "(top)"}: ${error.message ?? "is invalid"}`;
}

export const MAX_INPUT_SCHEMA_CHARS = 64 * 1024;
export const MAX_INPUT_SCHEMA_DEPTH = 32;
const argumentsAjv = new Ajv2020({ allErrors: false, strict: false, loadSchema: undefined });
/** @type {Map<string, Check | string>} */
const argumentChecks = new Map();

/** @param {any} value @param {number} limit @returns {boolean} */
function depthOver(value, limit) {
  if (limit < 0) return true;
  if (value && typeof value === "object") return Object.values(value).some((/** @type {any} */ v) => depthOver(v, limit - 1));
  return false;
}

/**
 * Why a tool's `arguments` do not fit its input_schema (null when they do, or it declares none), as
 * cspm/runtime/arguments.py: the schema is the author's, so it is bounded and never fetched from anywhere.
 * @param {string} tool @param {object | null} schema @param {unknown} args
 * @returns {string | null}
 */
export function argumentsProblem(tool, schema, args) {
  if (schema === null) return null;
  const text = JSON.stringify(schema);
  let check = argumentChecks.get(text);
  if (check === undefined) {
    if (text.length > MAX_INPUT_SCHEMA_CHARS) check = `larger than ${MAX_INPUT_SCHEMA_CHARS / 1024} KiB as JSON`;
    else if (depthOver(schema, MAX_INPUT_SCHEMA_DEPTH)) check = `nested more than ${MAX_INPUT_SCHEMA_DEPTH} deep`;
    else {
      try {
        check = /** @type {Check} */ (argumentsAjv.compile({ ...schema, $id: undefined }));
      } catch (err) {
        check = String(/** @type {Error} */ (err).message).slice(0, 200);
      }
    }
    if (argumentChecks.size > 64) argumentChecks.clear();
    argumentChecks.set(text, check);
  }
  if (typeof check === "string") return `the input_schema of tool \`${tool}\` is invalid: ${check}`;
  if (check(args)) return null;
  const error = check.errors?.[0];
  const where = (error?.instancePath ?? "").split("/").slice(1).map((p) => /^\d+$/.test(p) ? `[${p}]` : `.${p}`).join("");
  return `tool \`${tool}\`: arguments${where}: ${(error?.message ?? "is invalid").slice(0, 300)}`;
}
