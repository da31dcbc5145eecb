export * from '../../support/netns.js';
