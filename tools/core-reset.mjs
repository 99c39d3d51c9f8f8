// An AssemblyScript transform (passed to asc with --transform by package.json's asbuild script;
// asc resolves a transform named in asconfig.json as a package): adds the export `core_reset_globals`,
// which sets every mutable global of the core back to the value it starts with. A core whose
// linear memory is zeroed, whose static data is written back and whose globals are reset is in
// the state of a new instance; src/core_recycler.ts reuses an instance that way rather than
// instantiating the module again. The list is taken from the compiled module itself, so a global
// added to assembly/ is covered without naming it anywhere.
//
// The build fails if the module has a start function: its effects would have to be redone too.
import { Transform } from 'assemblyscript/transform';

export default class CoreReset extends Transform {
  afterCompile(module) {
    const binaryen = this.binaryen;
    if (module.getStart()) throw new Error('core-reset: the core has a start function, which a reset would have to run again');
    const sets = [];
    for (let i = 0; i < module.getNumGlobals(); i++) {
      const g = binaryen.getGlobalInfo(module.getGlobalByIndex(i));
      if (g.mutable && !g.module) sets.push(module.global.set(g.name, module.copyExpression(g.init)));
    }
    module.addFunction('core_reset_globals', binaryen.none, binaryen.none, [], module.block(null, sets));
    module.addFunctionExport('core_reset_globals', 'core_reset_globals');
  }
}
