/**
 * Security helpers: least-privilege Redis ACL users for services.
 * @module
 */
export { ACL_CLUSTER_COMMANDS, ACL_COMMANDS, type AclOptions, aclRules, aclSetUserCommand } from "./acl.js";
