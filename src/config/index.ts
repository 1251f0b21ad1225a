/**
 * Versioned, shared configuration per service (Hydra-compatible storage, live change events).
 * @module
 */
export {
  type ConfigChange,
  ConfigClient,
  type ConfigClientOptions,
  type ConfigEvents,
  type ConfigOptions,
  type ConfigSchema,
  ConfigSource,
  type ConfigSourceValue,
  type ConfigVersion,
  compareVersions,
  createConfigClient,
  nextVersion,
  type SetConfigOptions,
  schemaMessage,
} from "./config-client.js";
