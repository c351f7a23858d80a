/**
 * Every response the hub writes says where its answer came from (DESIGN):
 * `upstream` when kube-apiserver answered, `cache` when the node did (from
 * the cache, or the hub itself: its own endpoints and its Status errors).
 */
export const SOURCE_HEADER = 'X-Edgebox-Source';
export const UPSTREAM_SOURCE = 'upstream';
export const LOCAL_SOURCE = 'cache';
