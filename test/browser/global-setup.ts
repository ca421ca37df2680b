import { buildWeb } from '../../scripts/build-web';
import globalSetup from '../helpers/global-setup';

/** The browser tests load what `npm run build:web` makes; build it, then the usual test database. */
export default async function browserGlobalSetup(): Promise<void> {
  await buildWeb();
  await globalSetup();
}
