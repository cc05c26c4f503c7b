// The component's entry module: the hookd:hooks `credentials-exchange-json` world's
// `exchange-json` export, backed by the hook module the build bundles in as `hookd:user-hook`.
import "./globals.js";
import * as userModule from "hookd:user-hook";
import { createExchange } from "./adapter.js";

export const exchangeJson = createExchange(userModule);
