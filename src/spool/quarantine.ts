export { quarantine, safeQuarantineName, escapeLine, MAX_REASON_BYTES, type QuarantineOptions } from './transitions/quarantine.js';
