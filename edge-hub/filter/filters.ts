import type { HostPort } from '../config.ts';
import { discardCloudServiceFilter } from './discard-cloud-service.ts';
import { FilterChain } from './filter-chain.ts';
import { masterEndpointsFilter } from './master-endpoints.ts';
import { masterServiceFilter } from './master-service.ts';
import type { ResponseFilter } from './response-filter.ts';

export interface FilterSettings {
  /** Where pods on the node reach the hub (`--hub-service-address`); unset: no API rewrite. */
  hubServiceAddress?: HostPort | undefined;
  /** `--disable-filters` */
  disableFilters: readonly string[];
}

/** Every response filter the hub has: this list and nowhere else. */
export function registeredFilters(hubServiceAddress: HostPort | undefined): ResponseFilter[] {
  const filters: ResponseFilter[] = [discardCloudServiceFilter];
  if (hubServiceAddress !== undefined) {
    filters.push(masterServiceFilter(hubServiceAddress), masterEndpointsFilter(hubServiceAddress));
  }
  return filters;
}

export function filterChain(settings: FilterSettings): FilterChain {
  return new FilterChain(registeredFilters(settings.hubServiceAddress), settings.disableFilters);
}
