import type { Express } from 'express';
import type { Logger } from '../logger';
import { createErrorHandler, notFoundHandler, securityHeaders } from './error-handler';
import { createExpress } from './http-server';
import { mountRoutes } from './mount-routes';
import type { AnyRoute } from './route-contract';

/**
 * The small HTTP app of a process beside the API (the flusher's and the MQTT intake's health and
 * metrics): declared routes, answered and refused as the API's are (JSON errors, no stack).
 */
export function createServiceApp(routes: AnyRoute[], logger: Logger): Express {
  const app = createExpress();
  app.use(securityHeaders);
  app.use(mountRoutes(routes));
  app.use(notFoundHandler);
  app.use(createErrorHandler(logger.child({ module: 'errors' })));
  return app;
}
