/**
 * Reads the public option and stats interfaces out of the installed
 * declarations, as a consumer's compiler sees them, and lists every property
 * with whether it has TSDoc. Nested option objects (`writeBack`,
 * `readahead`) are followed; classes and open specs are not.
 */
import ts from 'typescript'

export interface PublicProperty {
  /** e.g. `RegionOptions.writeBack.intervalMs` */
  path: string
  name: string
  documented: boolean
}

/** The interfaces whose every property a user sets or reads. */
const ROOTS = ['RegionOptions', 'RegionStats', 'ResidentPoolOptions', 'RegionEvents'] as const

export function publicProperties(consumerFile: string, compilerOptions: ts.CompilerOptions): PublicProperty[] {
  const program = ts.createProgram([consumerFile], compilerOptions)
  const checker = program.getTypeChecker()
  const source = program.getSourceFile(consumerFile)
  if (source === undefined) throw new Error(`public-api: ${consumerFile} is not in the program`)
  const core = moduleSymbol(checker, source, '@faultline/core')
  const exports = checker.getExportsOfModule(core)
  const out: PublicProperty[] = []
  for (const root of ROOTS) {
    const symbol = exports.find((e) => e.name === root)
    if (symbol === undefined) throw new Error(`public-api: @faultline/core does not export ${root}`)
    const type = checker.getDeclaredTypeOfSymbol(checker.getAliasedSymbol(symbol))
    walk(checker, type, root, out, root === 'RegionEvents')
  }
  return out
}

function walk(checker: ts.TypeChecker, type: ts.Type, path: string, out: PublicProperty[], shallow: boolean): void {
  for (const prop of checker.getPropertiesOfType(type)) {
    const documented = ts.displayPartsToString(prop.getDocumentationComment(checker)).trim() !== ''
    const here = `${path}.${prop.name}`
    out.push({ path: here, name: prop.name, documented })
    if (shallow) continue
    const declaration = prop.valueDeclaration ?? prop.declarations?.[0]
    if (declaration === undefined) continue
    for (const part of nestedOptionTypes(checker, checker.getTypeOfSymbolAtLocation(prop, declaration))) walk(checker, part, here, out, false)
  }
}

/** Object types of a property declared as plain interfaces in faultline's own declarations. */
function nestedOptionTypes(checker: ts.TypeChecker, type: ts.Type): ts.Type[] {
  const parts = type.isUnion() ? type.types : [type]
  return parts.filter((t) => {
    const decl = t.getSymbol()?.declarations?.[0]
    if (decl === undefined || !ts.isInterfaceDeclaration(decl)) return false
    const file = decl.getSourceFile().fileName
    // BackendSpec is an open `{ type, [option]: unknown }`: backends document their own options.
    return file.includes('@faultline') && checker.getIndexInfosOfType(t).length === 0
  })
}

function moduleSymbol(checker: ts.TypeChecker, source: ts.SourceFile, specifier: string): ts.Symbol {
  for (const statement of source.statements) {
    if (ts.isImportDeclaration(statement) && ts.isStringLiteral(statement.moduleSpecifier) && statement.moduleSpecifier.text === specifier) {
      const symbol = checker.getSymbolAtLocation(statement.moduleSpecifier)
      if (symbol !== undefined) return symbol
    }
  }
  throw new Error(`public-api: the consumer does not import ${specifier}`)
}
