export * from './store.js';
export * from './errors.js';
export * from './courier.js';
export * from './log.js';
export * from './media-store.js';
