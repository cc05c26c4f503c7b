// Runs before the hook's own code is evaluated (the entry imports it first), so hook code
// can use Auth0's error classes as globals, as it did in Auth0's webtask runtime, and finds a
// `fetch` that fails cleanly rather than aborting the sandbox.
import { installGlobals, installNoNetworkFetch } from "./errors.js";

installGlobals();
installNoNetworkFetch();
