/**
 * Security helpers: least-privilege Redis ACL users for services.
 * @module
 */
export { ACL_COMMANDS, type AclOptions, aclRules, aclSetUserCommand } from "./acl.js";
