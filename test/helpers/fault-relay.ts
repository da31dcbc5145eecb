export * from '../../support/fault-relay.js';
