// The component's entry module: hookd:hooks `credentials-exchange` world's `exchange` export,
// backed by the hook module the build bundles in as `hookd:user-hook`.
import "./globals.js";
import * as userModule from "hookd:user-hook";
import { createExchange } from "./adapter.js";

export const exchange = createExchange(userModule);
