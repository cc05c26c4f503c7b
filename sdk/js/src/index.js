// hookd-js: build Auth0-style JavaScript hooks into hookd hook components.
export { buildHook, bundle, HookBuildError, SOURCE_EXTENSIONS, witPath } from "./build.js";
export {
  HookDenialError,
  InvalidRequestError,
  InvalidScopeError,
  ServerError,
} from "./runtime/errors.js";
