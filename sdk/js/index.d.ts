// Types for hookd JavaScript hooks (Client Credentials Exchange) and for the build API.
//
// In a hook file, annotate the export so editors complete the arguments:
//
//   /** @type {import("hookd-js").CredentialsExchangeHook} */
//   module.exports = function (client, scope, audience, context, cb) { ... };
//
//   /** @type {import("hookd-js").OnExecuteCredentialsExchange} */
//   exports.onExecuteCredentialsExchange = async (event, api) => { ... };

// ---- Auth0 Hooks shape ----------------------------------------------------------------------

/** The application (OAuth 2.0 client) asking for the token. */
export interface HookClient {
  /** The application's `client_id`. */
  id: string;
  /** The application's display name. */
  name: string;
  /** The tenant the application belongs to. */
  tenant: string;
  /** The application's metadata (Auth0 `client_metadata`). */
  metadata: Record<string, string>;
}

/** Facts about the HTTP request that asked for the token. */
export interface RequestInfo {
  /** The caller's IP address as the server saw it. */
  ip: string;
  /** The `Host` the request was addressed to, without the port. */
  hostname: string;
  /** Always `POST` at the token endpoint. */
  method: string;
  /** The `User-Agent` header, when there was one. */
  user_agent?: string;
}

/** The hook's `context` argument. */
export interface HookContext {
  /** Auth0's webtask context: the hook's secrets are `context.webtask.secrets.NAME`. */
  webtask: { secrets: Record<string, string> };
  /** The HTTP request that asked for the token (a hookd addition). */
  request: RequestInfo;
}

/**
 * What `cb(null, access_token)` takes: `scope` replaces the token's scopes (leaving it out
 * clears them, as in Auth0); every other property is a custom claim whose value is written
 * as JSON. Restricted claims (`iss`, `sub`, `aud`, ...) are dropped and noted in the hook log.
 */
export interface AccessTokenChanges {
  scope?: string[];
  [claim: string]: unknown;
}

/**
 * The callback every Auth0 Hook must call once. `cb(err)` refuses the token:
 * `InvalidScopeError` and `InvalidRequestError` give HTTP 400, `ServerError` or any other
 * error HTTP 500, with the message as `error_description`. `cb()` changes nothing.
 */
export type HookCallback = (error?: unknown, accessToken?: AccessTokenChanges | null) => void;

/**
 * An Auth0 Hook for the Client Credentials Exchange extensibility point:
 * `module.exports = function (client, scope, audience, context, cb) { ... }`.
 * It may be `async`; a hook that never calls `cb` fails at the hook's time limit.
 */
export type CredentialsExchangeHook = (
  client: HookClient,
  scope: string[] | undefined,
  audience: string,
  context: HookContext,
  cb: HookCallback,
) => void | Promise<void>;

// ---- Auth0 Actions shape --------------------------------------------------------------------

/** The `event` argument of an Auth0 Action for the credentials-exchange trigger. */
export interface CredentialsExchangeEvent {
  /** The token as it stands: the granted scopes and the claims set so far. */
  accessToken: { scope: string[]; customClaims: Record<string, unknown> };
  /** The application asking for the token. */
  client: { client_id: string; name: string; metadata: Record<string, string> };
  /** The API the token is for; `identifier` is the token's `aud`. */
  resource_server: { identifier: string };
  /** The HTTP request that asked for the token. */
  request: RequestInfo;
  /** The hook's secrets. */
  secrets: Record<string, string>;
  /** The tenant. */
  tenant: { id: string };
  /** The scopes the client asked for in its `scope` parameter. */
  transaction: { requested_scopes: string[] };
}

/** The `api` argument of an Auth0 Action for the credentials-exchange trigger. */
export interface CredentialsExchangeAPI {
  access: {
    /** Refuses the token with this OAuth 2.0 error code and description. */
    deny(
      code: "invalid_scope" | "invalid_request" | "server_error",
      reason?: string,
    ): CredentialsExchangeAPI;
  };
  accessToken: {
    /** Adds a custom claim; the value is written as JSON. */
    setCustomClaim(name: string, value: unknown): CredentialsExchangeAPI;
  };
  /**
   * The token's scopes from here on (Auth0's early-access target scopes). They start as the
   * granted scopes; changing them replaces the token's scope, subject to the API's
   * `hook_scope_policy` (`intersect_with_grant` keeps only granted scopes, as Auth0 does).
   */
  transaction: {
    addTargetScope(scope: string): CredentialsExchangeAPI;
    removeTargetScope(scope: string): CredentialsExchangeAPI;
    setTargetScopes(scopes: string[]): CredentialsExchangeAPI;
    clearTargetScopes(): CredentialsExchangeAPI;
  };
  /** Not available in hookd: every call runs in a fresh sandbox. Using it fails the call. */
  readonly cache: never;
}

/** `exports.onExecuteCredentialsExchange = async (event, api) => { ... }`. */
export type OnExecuteCredentialsExchange = (
  event: CredentialsExchangeEvent,
  api: CredentialsExchangeAPI,
) => void | Promise<void>;

// ---- Auth0's error classes (globals inside a hook; also exported here) ----------------------

/** Base class of Auth0's hook errors; `code` is the OAuth 2.0 error code. */
export class HookDenialError extends Error {
  readonly code: "invalid_scope" | "invalid_request" | "server_error";
}
/** HTTP 400 `invalid_scope`. */
export class InvalidScopeError extends HookDenialError {
  constructor(message?: string);
}
/** HTTP 400 `invalid_request`. */
export class InvalidRequestError extends HookDenialError {
  constructor(message?: string);
}
/** HTTP 500 `server_error`. */
export class ServerError extends HookDenialError {
  constructor(message?: string);
}

declare global {
  /** HTTP 400 `invalid_scope` (an Auth0 webtask global). */
  var InvalidScopeError: typeof import("hookd-js").InvalidScopeError;
  /** HTTP 400 `invalid_request` (an Auth0 webtask global). */
  var InvalidRequestError: typeof import("hookd-js").InvalidRequestError;
  /** HTTP 500 `server_error` (an Auth0 webtask global). */
  var ServerError: typeof import("hookd-js").ServerError;
}

// ---- build API ------------------------------------------------------------------------------

/** A build failure the hook's author can fix; the message says what and where. */
export class HookBuildError extends Error {}

/** Source file extensions the build accepts. */
export const SOURCE_EXTENSIONS: readonly string[];

/** Builds a hook source file into a hookd component. */
export function buildHook(
  sourcePath: string,
  options?: { keepBundle?: string },
): Promise<{ component: Uint8Array; bundleBytes: number }>;

/** Bundles a hook with hookd's adapter into one ES module; returns its text. */
export function bundle(sourcePath: string): Promise<string>;

/** The folder holding hookd's WIT files. */
export function witPath(): string;
