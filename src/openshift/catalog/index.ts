/**
 * Operator catalogs (file-based catalogs in catalog images), as building blocks:
 *
 *   readFileBasedCatalog(image)          catalog image → reduced catalog (streams the layers once)
 *   filterCatalog(catalog, operator)     oc-mirror v2 / catalog-filter v0.0.5 rules → kept packages, channels, bundles
 *   collectOperatorImages(bundles)       → bundle and related images to carry
 *   buildFilteredLayer(...)              second streaming pass → the filtered catalog layer (deterministic)
 *   filteredImage(...), filteredIndex()  → config, manifest, index of the opt-in filtered catalog image
 *
 * Configuration lives in src/config/openshift-operators.ts (operators[]) and
 * src/config/blocked-images.ts; cluster resources in src/cluster/openshift-catalog.ts.
 */
export { collectOperatorImages, type CollectedImages, type OperatorImage, type SkippedImage } from './collect.js';
export { catalogError, type CatalogErrorKind } from './errors.js';
export type { CatalogStats, FbcBundle, FbcCatalog, FbcChannel, FbcChannelEntry, FbcDeprecation, FbcOther, FbcPackage, FbcRelatedImage } from './fbc.js';
export { filterCatalog, type FilteredCatalog, type FilterRequest } from './filter.js';
export {
  buildFilteredLayer,
  FILTERED_CATALOG_FILE,
  FILTERED_LAYER_GZIP_LEVEL,
  filteredCommand,
  filteredImage,
  filteredIndex,
  type BuildFilteredLayerOptions,
  type BuiltBlob,
  type FilteredImageInput,
  type FilteredLayer,
} from './filtered-image.js';
export { ChannelGraph } from './graph.js';
export {
  CATALOG_CONFIGS_LABEL,
  configsDirFromConfig,
  parseImageConfig,
  readFileBasedCatalog,
  selectCatalogManifest,
  type CatalogImage,
  type LoadedCatalog,
  type ReadCatalogOptions,
} from './reader.js';
export { compareSemVer, parseLooseVersion, parseStrictSemVer, VersionRange, type LooseVersion, type SemVer } from './semver.js';
