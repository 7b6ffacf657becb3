export {
  createProxyServer,
  type ProxiedRequest,
  type ProxyRecorder,
  type ProxyServer,
  type ProxyServerOptions,
  type ProxyStats,
} from './proxy-server.ts';
export {
  endToEndHeaders,
  ForwardCodes,
  forwardRequest,
  hostFieldCount,
  originFormOf,
  type ForwardOptions,
  type ForwardResult,
} from './forward.ts';
export {
  classifyUpstreamError,
  createStatusClassifier,
  errorCodeOf,
  isErrorOutcome,
  type RequestOutcome,
  type UpstreamFailure,
} from './outcome.ts';
export { createTrustedProxies } from './trusted-proxies.ts';
