export { mappingResidentBytes as residentBytes } from '@faultline/core'
